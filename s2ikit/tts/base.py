"""The TTS backend protocol and registry.

A backend turns text into a mono float32 waveform at its own sample rate. Backends register a factory under a
name; heavy imports happen inside the factory, so `import s2ikit.tts` stays cheap and a missing optional
package becomes a one-line `UserError` only when that backend is asked for.
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


class TTSBackend(Protocol):
    name: str
    voice_id: str  # identifies the exact voice weights; part of the cache key
    sample_rate: int

    def synthesize(self, text: str, params: SynthesisParams) -> np.ndarray:
        """Mono float32 waveform in [-1, 1] at `sample_rate`."""
        ...


_FACTORIES: dict[str, Callable[[TTSConfig], TTSBackend]] = {}
_PROBES: dict[str, Callable[[], str | None]] = {}


def register_backend(name: str, probe: Callable[[], str | None]):
    """Register a factory; `probe()` returns None when usable, else what to do about it."""

    def wrap(factory: Callable[[TTSConfig], TTSBackend]) -> Callable[[TTSConfig], TTSBackend]:
        _FACTORIES[name] = factory
        _PROBES[name] = probe
        return factory

    return wrap


def _registry() -> None:
    # Importing the modules registers them; kept here so the registry is complete wherever it is read.
    # Neither imports its TTS package at module level, so both register even where that package is missing.
    from s2ikit.tts import coqui_backend, piper_backend  # noqa: F401


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
