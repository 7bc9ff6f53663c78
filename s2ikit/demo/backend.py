"""The demo's one door to the inference library: `SpeechToImage` (a run, a generator checkpoint or an export
folder); for one utterance, its pictures, the log-mel the model heard and where the speech encoder's attention
pooling looked.

Speech takes `s2ikit generate`'s path and checks (the same log-mel recipe, limits and noise for a seed), so the
demo's pictures are the pixels `generate` writes for the same input and seed.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from s2ikit.audio.speech import duration
from s2ikit.core.images import to_uint8
from s2ikit.core.speech_to_image import SpeechToImage
from s2ikit.utils.errors import UserError

# The attention probe hooks the shared encoder for one forward pass; two requests at once must not swap weights.
_PROBE_LOCK = threading.Lock()


@dataclass(frozen=True)
class Picture:
    images: np.ndarray  # (num, S, S, 3) uint8; image k is drawn with the k-th noise vector of the seed
    mel: np.ndarray  # (T, n_mels) the log-mel the speech encoder heard
    attention: np.ndarray  # (T',) attention pooling weight of each encoder step, averaged over dimensions; sums to 1
    frames_per_step: int  # log-mel frames between two encoder steps (the two convolutions' strides)
    frames_per_view: int  # log-mel frames one encoder step sees (the two convolutions' receptive field)
    seconds: float  # length of the utterance
    step: int | None  # training step of the generator


def load(model: str | Path) -> SpeechToImage:
    """A `train-gan` run folder, a generator checkpoint or an `s2ikit export` folder."""
    return SpeechToImage.from_pretrained(model)


def draw(
    pipe: SpeechToImage, num: int, seed: int, *, wav: str | Path | None = None, text: str = "", name: str = ""
) -> Picture:
    """`num` pictures of one utterance: a wav file (any rate and channel count; `name` is how messages call it)
    or a sentence spoken by the data set's TTS voice."""
    if wav is not None:
        mels, _ = pipe.mels(wav=wav, wav_names=[name or str(wav)])
    elif text.strip():
        mels, _ = pipe.mels(text=text)
    else:
        raise UserError("type a sentence first")
    encoder = pipe.bundle.speech_encoder
    with _PROBE_LOCK:
        seen: list[torch.Tensor] = []
        handle = encoder.pool.register_forward_hook(lambda module, args, out: seen.append(_attention(module, *args)))
        try:
            speech = pipe.embed(mels)
        finally:
            handle.remove()
    images = pipe.draw(speech, num, seed)[0]
    return Picture(
        images=to_uint8(images).permute(0, 2, 3, 1).numpy(),
        mel=mels[0],
        attention=seen[0][0].cpu().numpy(),
        frames_per_step=encoder.stride**2,
        frames_per_view=encoder.min_frames,
        seconds=duration(mels[0].shape[0], pipe.bundle.features),
        step=pipe.step,
    )


@torch.no_grad()
def _attention(pool: torch.nn.Module, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """AttentionPooling's weights alpha_t = softmax_t(W2 tanh(W1 h_t)) per dimension, from its own layers, averaged
    over dimensions: (B, T') per utterance, zero on padding."""
    scores = pool.out(torch.tanh(pool.hidden(h))).float()
    alpha = torch.softmax(scores.masked_fill(~mask.unsqueeze(-1), float("-inf")), dim=1)
    return alpha.mean(dim=2)
