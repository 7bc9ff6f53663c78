"""The TTS backend protocol and registry.

A backend turns text into a mono float32 waveform at its own sample rate. Backends register a factory under a
name (the engine: piper, coqui, espeak-ng, flite, festival); heavy imports happen inside the factory, so
`import s2ikit.tts` stays cheap and a missing optional package or program becomes a one-line `UserError` only
when that backend is asked for. Each engine may also register a lister of the voices installed here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from s2ikit.config import TTSConfig
from s2ikit.utils.errors import UserError


@dataclass(frozen=True)
class SynthesisParams:
    """Per-utterance controls; part of the cache key."""

    length_scale: float = 1.0  # > 1 speaks slower
    noise_scale: float = 0.0  # generator noise (0 = deterministic)
    noise_w: float = 0.0  # phoneme-duration noise (0 = deterministic)
    pitch: float = 1.0  # multiplies the voice's mean pitch (f0); 1.0 = the voice's own


CONTROLS = ("length_scale", "noise_scale", "noise_w", "pitch")


def unsupported(params: SynthesisParams, controls: frozenset[str]) -> list[str]:
    """The controls set away from their defaults that a backend honouring `controls` would ignore."""
    default = SynthesisParams()
    changed = [c for c in CONTROLS if getattr(params, c) != getattr(default, c)]
    return [f"{c}={getattr(params, c)}" for c in changed if c not in controls]


@dataclass(frozen=True)
class VoiceInfo:
    """One installed voice, named as `engine:voice` (the string `s2ikit.tts.voices.load_voice` takes)."""

    spec: str  # e.g. "espeak-ng:en-us+f3", "flite:slt", "piper:en_US-joe-medium"
    sex: str  # "female", "male" or "" when unknown (a path to a user's Piper voice)
    accent: str  # e.g. "US", "Scottish", "RP"
    controls: frozenset[str]  # the SynthesisParams fields this voice honours


class TTSBackend(Protocol):
    name: str
    voice_id: str  # identifies the exact voice weights; part of the cache key
    sample_rate: int
    controls: frozenset[str]  # SynthesisParams fields it honours; others must stay at their defaults

    def synthesize(self, text: str, params: SynthesisParams) -> np.ndarray:
        """Mono float32 waveform in [-1, 1] at `sample_rate`."""
        ...


_FACTORIES: dict[str, Callable[[TTSConfig], TTSBackend]] = {}
_PROBES: dict[str, Callable[[], str | None]] = {}
_LISTERS: dict[str, Callable[[], list[VoiceInfo]]] = {}


def register_backend(name: str, probe: Callable[[], str | None], voices: Callable[[], list[VoiceInfo]] | None = None):
    """Register a factory; `probe()` returns None when usable, else what to do about it; `voices()` lists the
    voices installed here (called only when the probe passes)."""

    def wrap(factory: Callable[[TTSConfig], TTSBackend]) -> Callable[[TTSConfig], TTSBackend]:
        _FACTORIES[name] = factory
        _PROBES[name] = probe
        if voices is not None:
            _LISTERS[name] = voices
        return factory

    return wrap


def _registry() -> None:
    # Importing the modules registers them; kept here so the registry is complete wherever it is read.
    # None imports its TTS package or runs its program at module level, so each registers even where it is missing.
    from s2ikit.tts import coqui_backend, espeak_backend, festival_backend, flite_backend, piper_backend  # noqa: F401


def load_backend(config: TTSConfig) -> TTSBackend:
    _registry()
    if config.backend not in _FACTORIES:
        raise UserError(f"--tts {config.backend}: unknown TTS backend (known: {', '.join(sorted(_FACTORIES))})")
    problem = _PROBES[config.backend]()
    if problem:
        raise UserError(f"TTS backend '{config.backend}' is not usable: {problem}")
    return _FACTORIES[config.backend](config)


def available_backends() -> dict[str, str | None]:
    """Backend name -> None if usable, else the fix."""
    _registry()
    return {name: probe() for name, probe in sorted(_PROBES.items())}


def installed_voices() -> list[VoiceInfo]:
    """Every voice of every usable engine, engine by engine in name order."""
    _registry()
    return [voice for name, lister in sorted(_LISTERS.items()) if _PROBES[name]() is None for voice in lister()]
