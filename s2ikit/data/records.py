"""The index's unit: one image with its captions, class and split. Every data set source produces these."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from s2ikit.utils.atomic import canonical_json, write_bytes
from s2ikit.utils.errors import UserError

# WebDataset splits member names at the first dot, and keys become file names: keep them plain.
KEY_PATTERN = re.compile(r"[A-Za-z0-9_\-]+")  # matched whole (fullmatch)


@dataclass(frozen=True)
class Caption:
    text: str  # what is said (synthesized for TTS data sets; the transcript, if any, for real speech)
    audio: str | None = None  # path to a recorded utterance; None means "synthesize `text`"


@dataclass(frozen=True)
class Record:
    key: str  # unique within the data set; letters, digits, '_' and '-'
    split: str  # "train" or "test"
    class_id: int  # -1 when the data set has no classes
    class_name: str
    image: str  # path to the image file; "" for generated images (shapes)
    captions: tuple[Caption, ...]
    attributes: dict[str, Any] = field(default_factory=dict)  # data-set specific (shapes: colour, shape, ...)

    def __post_init__(self) -> None:
        if not KEY_PATTERN.fullmatch(self.key):
            raise ValueError(f"record key {self.key!r} must match {KEY_PATTERN.pattern}")

    def to_json(self) -> str:
        return canonical_json(asdict(self))

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Record:
        return Record(**{**d, "captions": tuple(Caption(**c) for c in d["captions"])})


def write_index(path: str | Path, records: Iterable[Record]) -> None:
    write_bytes(path, "".join(r.to_json() + "\n" for r in records).encode())


def read_index(path: str | Path) -> list[Record]:
    records = []
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            try:
                records.append(Record.from_dict(json.loads(line)))
            except (ValueError, TypeError, KeyError) as e:
                raise UserError(f"{path}:{line_no}: not a valid index record ({e})") from None
    return records
