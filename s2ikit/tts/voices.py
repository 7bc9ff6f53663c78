"""Voices named as one string, `ENGINE:VOICE`: `espeak-ng:en-us+f3`, `flite:slt`, `festival:kal_diphone`,
`piper:en_US-joe-medium` (or `piper:/path/to/voice.onnx`). Prosody (rate, pitch, noise) is given separately,
per utterance, as `SynthesisParams`.
"""

from __future__ import annotations

import dataclasses

from s2ikit.config import TTSConfig
from s2ikit.tts.base import TTSBackend, available_backends, load_backend


def parse_voice(spec: str) -> tuple[str, str]:
    """`ENGINE:VOICE` -> (engine, voice); a one-line error names the string and the engines known."""
    from s2ikit.utils.errors import UserError

    engine, sep, voice = spec.partition(":")
    engines = ", ".join(available_backends())
    if not sep or not voice:
        raise UserError(f"voice {spec!r}: expected ENGINE:VOICE such as espeak-ng:en-us+f3 (engines: {engines})")
    if engine not in available_backends():
        raise UserError(f"voice {spec!r}: unknown TTS engine {engine!r} (known: {engines})")
    return engine, voice


def voice_spec(config: TTSConfig) -> str:
    """The one-string name of the voice a TTS config selects."""
    return f"{config.backend}:{config.voice}"


def voice_config(spec: str, base: TTSConfig | None = None) -> TTSConfig:
    """`base` (defaults otherwise) speaking with the voice `spec`; threads and the like carry over."""
    engine, voice = parse_voice(spec)
    return dataclasses.replace(base or TTSConfig(), backend=engine, voice=voice)


def load_voice(spec: str, base: TTSConfig | None = None) -> TTSBackend:
    """A backend ready to speak with the voice `spec`; one-line errors for an unknown, missing or bad voice."""
    return load_backend(voice_config(spec, base))
