"""`SpeechToImage`: a trained generator as one Python object, the way diffusers and open_clip serve their models.

    pipe = SpeechToImage.from_pretrained("runs/shapes/gan")      # a run folder, a generator .pt, an export
    images = pipe(wav="me.wav", num=4, seed=0)                   # -> list of PIL images

Speech reaches the generator exactly as the training captions did (core/inference.py): a waveform at any rate
-> the feature rate -> 16-bit -> log-mel -> speech encoder; a sentence is first spoken by the data set's TTS
voice. z is caption_noise's function of (seed, input row, k), so the images are those `s2ikit generate` draws for
the same inputs and seed, bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from s2ikit.audio.codec import from_int16, load_audio, resample, to_int16
from s2ikit.audio.features import log_mel
from s2ikit.core import export
from s2ikit.core.images import to_pil
from s2ikit.core.inference import GeneratorBundle, embed_speech, generate_images, mel_of_text
from s2ikit.utils.errors import SampleError, UserError

# Below this peak (-60 dBFS, 33 of 32,767 in 16-bit) a recording holds no speech an encoder could use: its
# per-utterance normalised log-mel would be amplified noise.
SILENCE_PEAK = 1e-3


def _as_list(value) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def speech_mel(audio: np.ndarray, sample_rate: int, bundle: GeneratorBundle, name: str) -> np.ndarray:
    """A waveform (samples,) or (samples, channels), float in [-1, 1] or int16, at `sample_rate` -> log-mel, or
    one line naming `name` when it is too short or silent for the speech encoder."""
    features = bundle.features
    audio = np.asarray(audio)
    if audio.dtype == np.int16:
        audio = from_int16(audio)
    if audio.ndim == 2:
        audio = audio.mean(axis=1)  # as load_audio mixes channels
    if audio.ndim != 1 or audio.size == 0:
        raise UserError(f"{name}: expected a non-empty mono or (samples, channels) waveform, got shape {audio.shape}")
    audio = resample(audio.astype(np.float32, copy=False), sample_rate, features.sample_rate)
    pcm = from_int16(to_int16(audio))  # 16-bit, as the shards store speech
    peak = float(np.abs(pcm).max()) if pcm.size else 0.0
    if peak < SILENCE_PEAK:
        shown = f"{20 * np.log10(peak):.0f} dBFS" if peak > 0 else "all zeros"
        raise UserError(f"{name}: silent (peak {shown}); record the description louder or check the microphone")
    try:
        return log_mel(pcm, features)  # refuses audio shorter than the speech encoder's minimum
    except SampleError as e:
        raise UserError(f"{name}: {e}") from None


def wav_mel(path: str | Path, bundle: GeneratorBundle) -> np.ndarray:
    """A sound file of any rate and channel count -> log-mel (unreadable, truncated, silent, short: one line)."""
    try:
        audio = load_audio(path, bundle.features.sample_rate)
    except SampleError as e:
        raise UserError(str(e)) from None
    return speech_mel(audio, bundle.features.sample_rate, bundle, str(path))


class SpeechToImage:
    """Spoken descriptions in, PIL images out, through one trained generator and its speech encoder."""

    def __init__(self, bundle: GeneratorBundle):
        self.bundle = bundle

    @classmethod
    def from_pretrained(
        cls, path: str | Path, device: str | torch.device = "cpu", precision: str = "fp32"
    ) -> SpeechToImage:
        """A `train-gan` run folder, a generator checkpoint (.pt), or a folder written by `s2ikit export`.
        precision "bf16": the generator runs under bfloat16 autocast, about a third faster on CPUs with AMX or
        AVX-512 BF16 and on GPUs; its pictures differ slightly from fp32's (the default, the same everywhere)."""
        return cls(export.load_pretrained(path).use_precision(precision)).to(device)

    def to(self, device: str | torch.device) -> SpeechToImage:
        self.bundle.to(torch.device(device))
        return self

    @property
    def device(self) -> torch.device:
        return self.bundle.device

    @property
    def image_size(self) -> int:
        return self.bundle.generator.image_size

    @property
    def step(self) -> int | None:
        return self.bundle.info.get("step")

    def mels(self, wav=None, audio=None, sample_rate: int | None = None, text=None, tts_backend: str = ""):
        """The inputs as log-mels, in the order wav files, waveforms, sentences; with a label for each."""
        mels, labels = [], []
        for path in _as_list(wav):
            mels.append(wav_mel(path, self.bundle))
            labels.append(Path(path).name)
        waves = [audio] if isinstance(audio, np.ndarray) else _as_list(audio)
        if waves and sample_rate is None:
            raise UserError("audio=: give its sample_rate= too (in Hz)")
        for i, wave in enumerate(waves):
            mels.append(speech_mel(wave, sample_rate, self.bundle, f"audio[{i}]"))
            labels.append(f"audio[{i}]")
        texts = [str(t) for t in _as_list(text)]
        if texts:
            mels += mel_of_text(texts, self.bundle.tts, self.bundle.features, tts_backend)
            labels += texts
        if not mels:
            raise UserError("give at least one wav=, audio= (with sample_rate=) or text=")
        return mels, labels

    def generate(
        self,
        wav: str | Path | Sequence[str | Path] | None = None,
        audio: np.ndarray | Sequence[np.ndarray] | None = None,
        sample_rate: int | None = None,
        text: str | Sequence[str] | None = None,
        num: int = 4,
        seed: int = 0,
        tts_backend: str = "",
    ) -> tuple[torch.Tensor, list[str]]:
        """(inputs, num, 3, S, S) images in [-1, 1] and each input's label."""
        if num < 1:
            raise UserError(f"num={num}: must be at least 1")
        mels, labels = self.mels(wav, audio, sample_rate, text, tts_backend)
        speech = embed_speech(self.bundle.speech_encoder, mels, self.device)
        return generate_images(self.bundle, speech, num, seed).cpu(), labels

    def __call__(
        self,
        wav: str | Path | Sequence[str | Path] | None = None,
        audio: np.ndarray | Sequence[np.ndarray] | None = None,
        sample_rate: int | None = None,
        text: str | Sequence[str] | None = None,
        num: int = 4,
        seed: int = 0,
        tts_backend: str = "",
    ) -> list[Image.Image]:
        """`num` images per input (wav files, then waveforms, then sentences), input by input."""
        images, _ = self.generate(wav, audio, sample_rate, text, num, seed, tts_backend)
        return [to_pil(image) for image in images.flatten(0, 1)]

    def __repr__(self) -> str:
        precision = f", {self.bundle.precision}" if self.bundle.precision != "fp32" else ""
        return f"SpeechToImage({self.bundle.path}, step {self.step}, {self.image_size} px, {self.device}{precision})"
