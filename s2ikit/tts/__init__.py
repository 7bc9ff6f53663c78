"""Text-to-speech backends behind one protocol, picked by name, with a content-addressed audio cache."""

from s2ikit.tts.base import (
    SynthesisParams,
    TTSBackend,
    VoiceInfo,
    available_backends,
    installed_voices,
    load_backend,
)
from s2ikit.tts.voices import load_voice, parse_voice, voice_config, voice_spec

__all__ = [
    "SynthesisParams",
    "TTSBackend",
    "VoiceInfo",
    "available_backends",
    "installed_voices",
    "load_backend",
    "load_voice",
    "parse_voice",
    "voice_config",
    "voice_spec",
]
