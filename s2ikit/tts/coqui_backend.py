"""Coqui TTS backend: Tacotron 2 + a neural vocoder (LJSpeech Tacotron2-DDC + HiFiGAN v2 by default), the kind
of TTS S2IGAN and the paper used for CUB and Oxford captions.

coqui-tts needs torch 2.11 with a matching torchaudio, so it lives in its own environment (pyproject extra
`coqui`, README). Nothing is downloaded: named models must already sit in Coqui's model folder.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import re
from pathlib import Path

import numpy as np

from s2ikit.config import TTSConfig
from s2ikit.tts.base import SynthesisParams, register_backend
from s2ikit.utils.errors import UserError
from s2ikit.utils.seeds import derive_seed

INSTALL = "pip install 's2ikit[coqui]' in an environment of its own (README: Tacotron 2 through Coqui TTS)"
# Coqui's catalogue names: <type>/<language>/<dataset>/<model>, stored as a folder with "--" for "/".
MODEL_NAME = re.compile(r"^(tts_models|vocoder_models)/[^/]+/[^/]+/[^/]+$")


def _probe() -> str | None:
    # find_spec only: importing TTS costs torch and torchaudio, too much for `s2ikit doctor` or a registry read.
    for module, package in (("TTS", "coqui-tts"), ("torchaudio", "torchaudio"), ("torchcodec", "torchcodec")):
        if importlib.util.find_spec(module) is None:
            return f"{package} is not installed: {INSTALL}"
    return None


def coqui_models_dir() -> Path:
    """Where Coqui keeps named models: $TTS_HOME/tts, else $XDG_DATA_HOME/tts, else ~/.local/share/tts (Linux)."""
    from trainer.io import get_user_data_dir  # Coqui's own lookup, so both always agree

    return Path(get_user_data_dir("tts"))


def model_folder(name: str) -> Path:
    """The folder Coqui keeps (and looks for) the model `name` in."""
    return coqui_models_dir() / name.replace("/", "--")


def model_files(spec: str, field: str) -> tuple[Path, Path]:
    """(checkpoint, config.json) for a Coqui model name, a local model folder or a checkpoint file."""
    from TTS.utils.manage import ModelManager

    path = Path(spec).expanduser()
    if path.is_file():
        config = path.parent / "config.json"
        if not config.is_file():
            raise UserError(f"tts.{field} {spec}: expected config.json beside the checkpoint")
        return path, config
    if path.is_dir():
        try:
            return ModelManager._find_files(path)  # Coqui's rule: model.pth/model_file.pth/..., else the one *.pt*
        except ValueError:
            raise UserError(f"tts.{field} {spec}: expected one model checkpoint (.pth) and config.json in it") from None
    if not MODEL_NAME.match(spec):
        raise UserError(f"tts.{field} {spec}: no such file or folder, and not a Coqui name like {MODEL_NAME.pattern}")
    folder = model_folder(spec)
    if not folder.is_dir():
        raise UserError(
            f"tts.{field} {spec}: not found at {folder} (nothing is downloaded): copy Coqui's {folder.name} folder "
            f"(checkpoint + config.json) into {folder.parent}, or set TTS_HOME to the folder that holds tts/"
        )
    try:
        # With the folder present this downloads nothing; it finds the files and points config.json at the
        # folder's own scale_stats.npy etc., exactly as Coqui does for a model it downloaded itself.
        checkpoint, config, _ = ModelManager(progress_bar=False).download_model(spec)
    except Exception as e:  # an unknown name, a folder without a checkpoint: one line, not a traceback
        raise UserError(f"tts.{field} {spec}: Coqui cannot load {folder}: {type(e).__name__}: {e}") from None
    return Path(checkpoint), Path(config)


def _digest(paths: list[Path]) -> str:
    sha = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                sha.update(block)
    return sha.hexdigest()[:16]


def utterance_seed(text: str, params: SynthesisParams) -> int:
    """A torch seed from the utterance alone, so its audio does not depend on what was synthesized before."""
    key = json.dumps([text, dataclasses.asdict(params)], sort_keys=True).encode()
    return derive_seed(0, "tts/coqui", key.decode())


class CoquiBackend:
    name = "coqui"
    controls = frozenset({"length_scale"})

    def __init__(self, config: TTSConfig):
        if config.noise_scale or config.noise_w:
            raise UserError("tts.noise_scale/tts.noise_w are Piper's (VITS) controls; leave them at 0 with --tts coqui")
        if config.device not in ("cpu", "cuda"):
            raise UserError(f"tts.device {config.device}: expected cpu or cuda")
        try:
            import torch
            from TTS.utils.synthesizer import PAD_SILENCE_SAMPLES, Synthesizer
        except ImportError as e:
            raise UserError(f"coqui-tts does not import ({e}): {INSTALL}") from None
        if config.device == "cuda" and not torch.cuda.is_available():
            raise UserError("tts.device cuda: torch sees no CUDA device here")
        model, model_config = model_files(config.coqui_model, "coqui_model")
        weights = [model]
        vocoder = vocoder_config = None
        if config.coqui_vocoder:
            vocoder, vocoder_config = model_files(config.coqui_vocoder, "coqui_vocoder")
            weights.append(vocoder)
        # torch's thread count is per process; prepare's workers each get `threads`, like Piper's ONNX sessions.
        torch.set_num_threads(config.threads)
        self._synth = Synthesizer(
            tts_checkpoint=model,
            tts_config_path=model_config,
            vocoder_checkpoint=vocoder,
            vocoder_config=vocoder_config,
            use_cuda=config.device == "cuda",
        )
        self._pad = PAD_SILENCE_SAMPLES
        self._rng_devices = [torch.cuda.current_device()] if config.device == "cuda" else []
        self.sample_rate = int(self._synth.output_sample_rate)  # the vocoder's rate when there is one
        vocoder_name = vocoder.parent.name if vocoder else "griffin-lim"
        # "seed2": utterance_seed's derivation, part of the cache key, so audio drawn with an older one is not reused
        self.voice_id = f"coqui:{model.parent.name}+{vocoder_name}:{_digest(weights)}:{config.device}:seed2"

    def synthesize(self, text: str, params: SynthesisParams) -> np.ndarray:
        import torch

        if params.noise_scale or params.noise_w:
            raise ValueError("Tacotron 2 has no noise controls: noise_scale and noise_w must be 0")
        if params.pitch != 1.0:
            raise ValueError("Tacotron 2 has no pitch control: pitch must be 1")
        # Coqui keeps Tacotron 2's prenet dropout on at inference for some models (prenet_dropout_at_inference):
        # a seed per utterance makes the audio a function of the text, whatever order the captions come in.
        # fork_rng leaves the process's own random stream as it was.
        with torch.random.fork_rng(devices=self._rng_devices), torch.inference_mode():
            torch.manual_seed(utterance_seed(text, params))
            samples = self._synth.tts(text, split_sentences=True)
        # Coqui appends PAD_SILENCE_SAMPLES of silence after every sentence; the last one only pads the file.
        audio = np.asarray(samples[: -self._pad], dtype=np.float32)
        if params.length_scale != 1.0:
            import librosa

            # Tacotron 2 has no duration input: stretch the waveform instead (phase vocoder, pitch kept).
            audio = librosa.effects.time_stretch(audio, rate=1.0 / params.length_scale)
        return np.clip(audio, -1.0, 1.0)  # HiFiGAN ends in tanh; Griffin-Lim can overshoot


@register_backend("coqui", _probe)
def _make(config: TTSConfig) -> CoquiBackend:
    return CoquiBackend(config)
