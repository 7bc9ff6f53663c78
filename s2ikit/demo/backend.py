"""The demo's one door to the inference library: a trained run in; for one utterance, its pictures, the log-mel
the model heard and where the speech encoder's attention pooling looked.

Speech takes the same path as `s2ikit generate` (same log-mel recipe, same noise for a seed), so the demo's
pictures are the pixels `generate` writes for the same input and seed.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from s2ikit.core.images import to_uint8
from s2ikit.core.inference import GeneratorBundle, embed_speech, generate_images, load_bundle, mel_of_text, mel_of_wav
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


def load(run: str | Path) -> GeneratorBundle:
    """A `train-gan` run folder or a generator.pt."""
    return load_bundle(run)


def draw(
    bundle: GeneratorBundle, num: int, seed: int, *, wav: str | Path | None = None, text: str = "", name: str = ""
) -> Picture:
    """`num` pictures of one utterance: a wav file (any rate and channel count; `name` is how messages call it)
    or a sentence spoken by the data set's TTS voice."""
    features, encoder = bundle.features, bundle.speech_encoder
    if wav is not None:
        mel = mel_of_wav(wav, features)
    elif text.strip():
        mel = mel_of_text([text], bundle.tts, features)[0]
    else:
        raise UserError("type a sentence first")
    seconds = _seconds(mel.shape[0], features)
    if mel.shape[0] < encoder.min_frames:
        need = _seconds(encoder.min_frames, features)
        raise UserError(
            f"{name or 'the sentence'}: too short ({seconds:.2f} s of audio; "
            f"the speech encoder needs at least {need:.2f} s)"
        )
    with _PROBE_LOCK:
        seen: list[torch.Tensor] = []
        handle = encoder.pool.register_forward_hook(lambda module, args, out: seen.append(_attention(module, *args)))
        try:
            speech = embed_speech(encoder, [mel], bundle.device)
        finally:
            handle.remove()
    images = generate_images(bundle, speech, num, seed)[0]
    return Picture(
        images=to_uint8(images.cpu()).permute(0, 2, 3, 1).numpy(),
        mel=mel,
        attention=seen[0][0].cpu().numpy(),
        frames_per_step=encoder.stride**2,
        frames_per_view=encoder.min_frames,
        seconds=seconds,
        step=bundle.info.get("step"),
    )


def _seconds(frames: int, features) -> float:
    """Duration of `frames` log-mel frames (a centred STFT puts a frame on every hop, both ends included)."""
    return (frames - int(features.center)) * features.hop_length / features.sample_rate


@torch.no_grad()
def _attention(pool: torch.nn.Module, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """AttentionPooling's weights alpha_t = softmax_t(W2 tanh(W1 h_t)) per dimension, from its own layers, averaged
    over dimensions: (B, T') per utterance, zero on padding."""
    scores = pool.out(torch.tanh(pool.hidden(h))).float()
    alpha = torch.softmax(scores.masked_fill(~mask.unsqueeze(-1), float("-inf")), dim=1)
    return alpha.mean(dim=2)
