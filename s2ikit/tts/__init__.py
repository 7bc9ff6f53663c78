"""Text-to-speech backends behind one protocol, picked by name, with a content-addressed audio cache."""

from s2ikit.tts.base import SynthesisParams, TTSBackend, available_backends, load_backend

__all__ = ["SynthesisParams", "TTSBackend", "available_backends", "load_backend"]
