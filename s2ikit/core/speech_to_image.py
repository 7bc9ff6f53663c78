"""`SpeechToImage`: a trained generator as one Python object, the way diffusers and open_clip serve their models.

    pipe = SpeechToImage.from_pretrained("runs/shapes/gan")      # a run folder, a generator .pt, an export
    images = pipe(wav="me.wav", num=4, seed=0)                   # -> list of PIL images

Speech reaches the generator exactly as the training captions did (audio/speech.py): a waveform at any rate
-> the feature rate -> 16-bit -> log-mel -> speech encoder; a sentence is first spoken by the data set's TTS
voice. z is caption_noise's function of (seed, input row, k), so the images are those `s2ikit generate` and the
demo draw for the same inputs and seed, bit for bit. One request is bounded by audio/limits.py, as theirs are.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from s2ikit.audio.limits import MAX_IMAGES, MAX_INPUTS
from s2ikit.audio.speech import duration, speech_log_mel, wav_log_mel
from s2ikit.core import export, hub
from s2ikit.core.images import to_pil
from s2ikit.core.inference import GeneratorBundle, embed_speech, generate_images, mel_of_text
from s2ikit.utils.errors import UserError


def _as_list(value) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def check_num(num) -> int:
    """Images per input: a whole number from 1 to MAX_IMAGES."""
    if isinstance(num, bool) or not isinstance(num, (int, np.integer)) or not 1 <= num <= MAX_IMAGES:
        raise UserError(f"num {num!r}: images per input must be a whole number from 1 to {MAX_IMAGES}")
    return int(num)


def resolve_device(device: str | torch.device) -> torch.device:
    """The device "auto" (a GPU when there is one, else the CPU), "cpu", "cuda" or "cuda:N" names on this machine."""
    if isinstance(device, torch.device):
        return device
    name = str(device).strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or (name.startswith("cuda:") and name[5:].isdigit()):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(name[5:]) if ":" in name else 0
        if index >= count:
            have = f"{count} CUDA GPU(s) (cuda:0 to cuda:{count - 1})" if count else "no CUDA GPU"
            raise UserError(f"device {device!r}: this machine has {have}; use --device cpu or auto")
        return torch.device(name)
    raise UserError(f"device {device!r}: must be auto, cpu, cuda or cuda:N")


class SpeechToImage:
    """Spoken descriptions in, PIL images out, through one trained generator and its speech encoder."""

    def __init__(self, bundle: GeneratorBundle):
        self.bundle = bundle

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        device: str | torch.device = "cpu",
        precision: str = "fp32",
        revision: str | None = None,
    ) -> SpeechToImage:
        """A `train-gan` run folder, a generator checkpoint (.pt), a folder written by `s2ikit export`, or the id
        "USER/NAME" of a Hugging Face Hub model repo holding such a folder (when no local path of that name exists;
        needs `pip install huggingface_hub`). `revision`: the Hub repo's branch, tag or commit (default main). A Hub
        repo is kept in the Hub's cache, so HF_HUB_OFFLINE=1 loads it again without the network.
        precision "bf16": the generator runs under bfloat16 autocast, about a third faster on CPUs with AMX or
        AVX-512 BF16 and on GPUs; "fp16": float16 autocast, on a GPU only. Their pictures differ slightly from
        fp32's (the default, the same everywhere). `device`: "cpu" (the default), "cuda", "cuda:N" or "auto"."""
        device = resolve_device(device)  # before a download: a bad device is named at once
        bundle = export.load_pretrained(path, revision).use_precision(precision)
        return cls(bundle).to(device)

    def save_pretrained(
        self, folder: str | Path, push_to_hub: str | None = None, private: bool = False, revision: str | None = None
    ) -> Path:
        """Write the model this pipeline was loaded from as an `s2ikit export` folder (what `s2ikit export` writes,
        the evaluation numbers aside: run `s2ikit export` for a model card that shows them); with `push_to_hub`
        "USER/NAME", also upload the folder to that Hub model repo (created `private` when missing; on branch
        `revision`, default main). Returns the folder."""
        if push_to_hub is not None:
            hub.check_repo_id(push_to_hub, "push_to_hub")  # before anything is written
        info = self.bundle.info
        if self.bundle.path.is_dir() and export.is_export(self.bundle.path):
            within = info["hub"]["within"] if info.get("hub") else None
            folder = export.copy_export(self.bundle.path, folder, within)
        else:
            folder = export.export_generator(self.bundle.path, folder)
        if push_to_hub is not None:
            hub.upload(folder, push_to_hub, private, revision, f"s2ikit export, step {self.step}")
        return Path(folder)

    def to(self, device: str | torch.device) -> SpeechToImage:
        device = resolve_device(device)
        if device.type == "cpu" and self.bundle.precision == "fp16":
            raise UserError("precision fp16 runs on a GPU only; on the CPU use bf16 (or fp32)")
        self.bundle.to(device)
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

    def mels(
        self,
        wav=None,
        audio=None,
        sample_rate: int | None = None,
        text=None,
        tts_backend: str = "",
        wav_names: Sequence[str] | None = None,
    ) -> tuple[list[np.ndarray], list[str]]:
        """The inputs as log-mels, in the order wav files, waveforms, sentences; with a label for each.
        `wav_names`: how messages call the wav files (their paths by default)."""
        paths, texts = _as_list(wav), _as_list(text)
        waves = [audio] if isinstance(audio, np.ndarray) else _as_list(audio)
        count = len(paths) + len(waves) + len(texts)
        if count == 0:
            raise UserError("give at least one wav=, audio= (with sample_rate=) or text=")
        if count > MAX_INPUTS:
            raise UserError(f"{count} inputs: one request takes up to {MAX_INPUTS} (wav files, waveforms, sentences)")
        if waves and sample_rate is None:
            raise UserError("audio=: give its sample_rate= too (in Hz)")
        features = self.bundle.features
        names = list(wav_names) if wav_names is not None else [str(path) for path in paths]
        if len(names) != len(paths):
            raise ValueError(f"{len(names)} wav_names for {len(paths)} wav files")
        mels = [wav_log_mel(path, features, name) for path, name in zip(paths, names)]
        mels += [speech_log_mel(wave, sample_rate, features, f"audio[{i}]") for i, wave in enumerate(waves)]
        mels += mel_of_text(texts, self.bundle.tts, features, tts_backend)
        labels = [Path(path).name for path in paths] + [f"audio[{i}]" for i in range(len(waves))]
        labels += [str(t).strip() for t in texts]
        need = self.bundle.speech_encoder.min_frames  # this encoder's convolutions may need more than log_mel's floor
        for mel, name in zip(mels, [*names, *labels[len(paths) :]]):
            if mel.shape[0] < need:
                raise UserError(
                    f"{name}: too short ({duration(mel.shape[0], features):.2f} s of audio; the speech encoder "
                    f"needs at least {duration(need, features):.2f} s)"
                )
        return mels, labels

    def embed(self, mels: list[np.ndarray]) -> torch.Tensor:
        """(N, D) speech embeddings of N log-mels."""
        return embed_speech(self.bundle.speech_encoder, mels, self.device)

    def draw(self, speech: torch.Tensor, num: int = 4, seed: int = 0) -> torch.Tensor:
        """(N, num, 3, S, S) images in [-1, 1] of N speech embeddings; image k of input i has z of (seed, i, k)."""
        return generate_images(self.bundle, speech, check_num(num), seed).cpu()

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
        check_num(num)  # before any speech is read or spoken
        mels, labels = self.mels(wav, audio, sample_rate, text, tts_backend)
        return self.draw(self.embed(mels), num, seed), labels

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
