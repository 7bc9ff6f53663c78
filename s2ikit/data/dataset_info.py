"""`dataset.json`, the summary `s2ikit prepare` writes beside the shards: its one reader and its one writer.

Everything downstream (training, evaluation, select, embed, the CLI) reads a prepared data set's classes, split
sizes and settings through `read_dataset`, so the file's layout is known in one place.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from s2ikit.config import FeatureConfig, TTSConfig, build_section
from s2ikit.utils.atomic import file_sha256, write_json
from s2ikit.utils.errors import UserError

DATASET_FILE = "dataset.json"


@dataclass(frozen=True)
class SplitInfo:
    samples: int  # images with every caption usable
    captions: int  # captions with features
    images_indexed: int
    shards: tuple[str, ...]


@dataclass(frozen=True)
class DatasetInfo:
    """A prepared data set, as its `dataset.json` describes it."""

    root: Path
    dataset: str  # the source's name: shapes, cub, oxford, flickr8k, places
    produced_by: str
    classes: tuple[str, ...]
    class_ids: tuple[int, ...]  # -1: a data set without classes
    splits: dict[str, SplitInfo]
    failures: int
    settings: dict[str, Any]  # every section of the preset that shaped the shards, as plain data

    @property
    def path(self) -> Path:
        return self.root / DATASET_FILE

    @cached_property
    def sha256(self) -> str:
        """The file's hash: keys caches (judge, FID reference statistics) to this exact preparation."""
        return file_sha256(self.path)

    @property
    def has_classes(self) -> bool:
        return any(c >= 0 for c in self.class_ids)

    @property
    def image_size(self) -> int:
        return int(self.settings["prepare"]["image_size"])

    @property
    def features(self) -> FeatureConfig:
        return build_section(FeatureConfig, self.settings["features"], f"{self.path} settings.features")

    @property
    def tts(self) -> TTSConfig | None:
        """How the captions were spoken; None for recorded speech."""
        raw = self.settings.get("tts")
        return build_section(TTSConfig, raw, f"{self.path} settings.tts") if raw else None


def _not_ours(path: Path, e: Exception) -> UserError:
    return UserError(f"{path}: not a dataset.json written by `s2ikit prepare` ({type(e).__name__}: {e})")


def _load(root: Path) -> tuple[Path, Any]:
    """dataset.json's path and parsed content; a missing or unparsable file is one line saying what to run."""
    path = root / DATASET_FILE
    if not path.is_file():
        raise UserError(f"{path}: missing; run `s2ikit prepare` (to the end) for {root} first")
    try:
        return path, json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise _not_ours(path, e) from None


def read_dataset(root: str | Path) -> DatasetInfo:
    """The prepared data set at `root`; a missing or unreadable file is one line saying what to run."""
    root = Path(root)
    path, raw = _load(root)
    try:
        splits = {
            name: SplitInfo(int(s["samples"]), int(s["captions"]), int(s["images_indexed"]), tuple(s["shards"]))
            for name, s in raw["splits"].items()
        }
        return DatasetInfo(
            root=root,
            dataset=str(raw["dataset"]),
            produced_by=str(raw.get("produced_by", "")),
            classes=tuple(raw["classes"]),
            class_ids=tuple(int(c) for c in raw["class_ids"]),
            splits=splits,
            failures=int(raw.get("failures", 0)),
            settings=dict(raw["settings"]),
        )
    except (ValueError, KeyError, TypeError) as e:
        raise _not_ours(path, e) from None


def dataset_name(root: str | Path) -> str:
    """Only the source's name (which preset applies), read before any setting is validated or anything loads."""
    path, raw = _load(Path(root))
    try:
        return str(raw["dataset"])
    except (KeyError, TypeError) as e:
        raise _not_ours(path, e) from None


def write_dataset(root: str | Path, summary: dict[str, Any]) -> None:
    """Written by `prepare`'s finalize step, atomically, and only when its content changed (so reruns keep the
    file, and with it every cache keyed to its hash)."""
    write_json(Path(root) / DATASET_FILE, summary, only_if_changed=True)
