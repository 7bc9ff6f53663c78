"""The source interface and registry."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from PIL import Image

from s2ikit.config import Preset
from s2ikit.data.records import Record
from s2ikit.utils.errors import UserError


class Source(Protocol):
    name: str
    needs_tts: bool  # True when captions are text to synthesize, False for recorded speech
    # Filled by check()/index(): warnings the user must see (counts unlike the published ones, a split that
    # makes results incomparable), and images left out of the index, in failures.jsonl's format.
    notes: list[str]
    left_out: list[dict[str, Any]]

    def identity(self) -> dict[str, Any]:
        """What determines the index's content (settings, root path); part of the index fingerprint."""
        ...

    def check(self) -> None:
        """Fail fast (UserError, one line) when the raw data is missing or incomplete."""
        ...

    def index(self) -> list[Record]: ...

    def load_image(self, record: Record, size: int) -> Image.Image:
        """RGB image, shorter side `size`; raises SampleError for unreadable files."""
        ...


_SOURCES: dict[str, Callable[[Preset, Path | None], Source]] = {}


def register_source(name: str):
    def wrap(factory):
        _SOURCES[name] = factory
        return factory

    return wrap


def _registry() -> None:
    from s2ikit.data.sources import cub, flickr8k, oxford, places, shapes  # noqa: F401


def source_names() -> list[str]:
    _registry()
    return sorted(_SOURCES)


def get_source(name: str, preset: Preset, root: Path | None) -> Source:
    _registry()
    if name not in _SOURCES:
        raise UserError(f"unknown data set '{name}' (known: {', '.join(sorted(_SOURCES))})")
    return _SOURCES[name](preset, root)
