"""The source interface and the data set catalog's data side.

A data set is one module in this package (or in a third-party package, named by an `s2ikit.datasets` entry
point) that calls `register_dataset` once: its `Source` class, its [NAME] preset section, its `s2ikit prepare NAME`
options and its model-card terms. The settings side of that declaration goes to `s2ikit.config`'s catalog, which
the preset loader and the CLI read; the source class stays here, where `get_source` builds it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from PIL import Image

from s2ikit.config import DatasetEntry, PrepareSource, Preset, datasets
from s2ikit.config import register_dataset as register_settings
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


def register_dataset(
    name: str,
    source: Callable[[Preset, Path | None], Source],
    settings: type,
    prepare: PrepareSource,
    terms: str,
) -> None:
    """Declare the data set `name`: `source(preset, root)` reads it (its settings are `preset.NAME`, an instance
    of `settings`), `prepare` describes `s2ikit prepare NAME`, and `terms` is what its model card says of the
    data's licence."""
    register_settings(DatasetEntry(name, settings, prepare, terms))
    _SOURCES[name] = source


def source_names() -> list[str]:
    return sorted(_SOURCES)


def get_source(name: str, preset: Preset, root: Path | None) -> Source:
    if name not in _SOURCES or name not in datasets():
        raise UserError(f"unknown data set '{name}' (known: {', '.join(sorted(_SOURCES))})")
    return _SOURCES[name](preset, root)
