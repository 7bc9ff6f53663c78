"""From speech to pictures with a trained run: load the generator bundle, embed speech, draw images.

`generate`, `evaluate`, `select` and the Python API share this module. A `generator` checkpoint (written by
`train-gan` as checkpoints/generator.pt) holds the EMA generator, the frozen speech encoder, the
log-mel recipe and the TTS settings of the data set, so a wav file or a sentence becomes speech features
exactly as the training captions did: TTS (for text) -> resample to the feature rate -> 16-bit (as stored in
the shards) -> log-mel -> speech encoder -> generator.
"""

from __future__ import annotations

import dataclasses
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from s2ikit.audio.limits import MAX_TEXT_CHARS
from s2ikit.audio.speech import speech_log_mel
from s2ikit.config import FeatureConfig, TTSConfig, build_section
from s2ikit.core import checkpoints
from s2ikit.core.factories import build_generator, build_speech_encoder
from s2ikit.models.generator import Generator
from s2ikit.models.speech_encoder import SpeechEncoder
from s2ikit.utils.errors import UserError
from s2ikit.utils.seeds import derive_seed

PRECISIONS = ("fp32", "bf16", "fp16")  # fp16: float16 autocast, for GPUs (SpeechToImage refuses it on a CPU)


@dataclass
class GeneratorBundle:
    generator: Generator  # the EMA generator, eval mode
    speech_encoder: SpeechEncoder
    features: FeatureConfig
    tts: TTSConfig | None  # how the data set's captions were spoken; None for recorded-speech data sets
    path: Path
    info: dict[str, Any]  # step, data folder, encoder run, what stopped training
    # set with use_precision. "bf16" runs the generator under bfloat16 autocast: about a third faster on CPUs
    # with AMX or AVX-512 BF16 and on GPUs, but the pictures then differ slightly from fp32's, and from one kind
    # of CPU to another
    precision: str = "fp32"

    def to(self, device: torch.device) -> GeneratorBundle:
        self.generator.to(device), self.speech_encoder.to(device)
        return self

    def use_precision(self, precision: str) -> GeneratorBundle:
        """fp32 (NCHW, so its pictures stay as they were) or bf16 with channels_last (NHWC) convolutions, about
        a third faster again on CPUs with AMX (benchmarks/bench_pipeline.py)."""
        if precision not in PRECISIONS:
            raise UserError(f"precision={precision!r}: must be one of {'|'.join(PRECISIONS)}")
        self.precision = precision
        self.generator.to(memory_format=torch.channels_last if precision == "bf16" else torch.contiguous_format)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.generator.parameters()).device


def resolve_checkpoint(run_or_file: str | Path) -> Path:
    path = Path(run_or_file)
    if path.is_dir():
        path = path / checkpoints.GENERATOR
        if not path.is_file():
            raise UserError(f"{path}: missing; is {run_or_file} a `s2ikit train-gan` run that saved a checkpoint?")
    return path


def load_bundle(run_or_file: str | Path) -> GeneratorBundle:
    """A `train-gan` run folder or its `generator.pt` (copied anywhere)."""
    path = resolve_checkpoint(run_or_file)
    ckpt = checkpoints.load(path, "generator")
    generator = build_generator(ckpt["generator_args"])
    generator.load_state_dict(ckpt["generator"])
    speech = build_speech_encoder(ckpt["speech_args"])
    speech.load_state_dict(ckpt["speech_encoder"])
    features = build_section(FeatureConfig, ckpt["features"], f"{path} features")
    tts = build_section(TTSConfig, ckpt["tts"], f"{path} tts") if ckpt.get("tts") else None
    info = {k: ckpt.get(k) for k in ("step", "data", "encoder_run", "stopped")}
    return GeneratorBundle(generator.eval(), speech.eval(), features, tts, path, info)


def check_sentence(text: str) -> str:
    """The sentence stripped, or a UserError: empty, no word to speak, a control character, too long."""
    if not isinstance(text, str):
        raise UserError(f"text={text!r}: a sentence must be a string")
    shown = text.strip() if len(text.strip()) <= 40 else text.strip()[:37] + "..."
    if not text.strip():
        raise UserError("empty sentence: type what to draw")
    control = next((c for c in text if unicodedata.category(c) == "Cc" and c not in "\t\n\r"), None)
    if control is not None:  # NUL and the like: no voice speaks them, and some cut the sentence short
        raise UserError(f"sentence {shown!r}: holds a control character (U+{ord(control):04X}); type plain text")
    if len(text) > MAX_TEXT_CHARS:
        raise UserError(f"sentence {shown!r}: {len(text)} characters; one sentence takes up to {MAX_TEXT_CHARS}")
    if not any(c.isalnum() for c in text):
        raise UserError(f"sentence {shown!r}: no word to speak (no letter or digit)")
    return text.strip()


def mel_of_text(texts: list[str], tts: TTSConfig | None, features: FeatureConfig, backend: str = "") -> list:
    """Speak each sentence with the data set's TTS voice (at the neutral speaking rate) -> log-mels."""
    from s2ikit.tts import SynthesisParams, load_backend

    sentences = [check_sentence(text) for text in texts]  # all of them before the voice loads
    if tts is None:
        tts = TTSConfig()  # a recorded-speech data set: the default offline voice
    if backend:
        tts = dataclasses.replace(tts, backend=backend)
    voice = load_backend(tts)
    params = SynthesisParams(length_scale=1.0, noise_scale=tts.noise_scale, noise_w=tts.noise_w)
    return [
        speech_log_mel(voice.synthesize(text, params), voice.sample_rate, features, f"sentence {text!r}")
        for text in sentences
    ]


@torch.no_grad()
def embed_speech(encoder: nn.Module, mels: list[np.ndarray], device: torch.device) -> torch.Tensor:
    lengths = torch.tensor([m.shape[0] for m in mels])
    padded = nn.utils.rnn.pad_sequence([torch.from_numpy(m.astype(np.float32)) for m in mels], batch_first=True)
    return encoder(padded.to(device), lengths.to(device)).float()


def caption_noise(seed: int, rows: list[int], k: int, z_dim: int) -> torch.Tensor:
    """z for the k-th image of each caption row: a pure function of (seed, row, k), whatever the batching."""
    return torch.stack(
        [
            torch.randn(z_dim, generator=torch.Generator().manual_seed(derive_seed(seed, "eval/z", row, k)))
            for row in rows
        ]
    )


@torch.no_grad()
def generate_images(
    bundle: GeneratorBundle, speech: torch.Tensor, num: int, seed: int, first_row: int = 0
) -> torch.Tensor:
    """(N, D) speech embeddings -> (N, num, 3, S, S) images in [-1, 1]; row i's noise is caption_noise's for
    `first_row + i`, so a split generated batch by batch gets the same images as in one go."""
    device = bundle.device
    rows = list(range(first_row, first_row + speech.shape[0]))
    dtype = torch.float16 if bundle.precision == "fp16" else torch.bfloat16
    with torch.autocast(device.type, dtype=dtype, enabled=bundle.precision != "fp32"):
        images = [
            bundle.generator(caption_noise(seed, rows, k, bundle.generator.z_dim).to(device), speech.to(device))
            for k in range(num)
        ]
    return torch.stack(images, dim=1).float()
