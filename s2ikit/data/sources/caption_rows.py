"""Captioned images given as rows (image, split, class, text and/or audio), checked one by one and grouped into
records: what the `manifest` and `spokencoco` sources share.

Every row is checked where it is read, and a problem is one line naming the file, the row's line (or entry) and
the field: a missing image, neither text nor audio, an unknown split, a path that leaves the root, a value too
long. Every size is bounded: the rows of a file, a line's bytes, a text's characters, a path's, the captions of
one image (two digits in the shard's `KEY.cNN`) and, where it is known (a row's `duration`, or the file's header
when the source probes it), an utterance's seconds.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from s2ikit.data.records import Caption, Record
from s2ikit.data.sources.layout import first_per_split, make_keys
from s2ikit.utils.errors import UserError

MAX_LINE_BYTES = 1 << 20  # a row with 100 captions of 1,000 characters is 100 KB; far longer is not a row
MAX_PATH_CHARS = 1024
MAX_NAME_CHARS = 200  # a class or speaker name
MAX_CAPTIONS = 100  # per image: the shard names caption NN as KEY.cNN
SPLITS = ("train", "test")


@dataclass(frozen=True)
class Bounds:
    """The sizes a source accepts (its settings), checked on every row."""

    rows: int  # rows (captions, or images with their captions) in one file
    text_chars: int  # characters of one caption's text
    audio_seconds: float  # seconds of one recorded caption


@dataclass(frozen=True)
class CaptionRow:
    """One caption of one image, checked; paths are relative to the root, in / form."""

    where: str  # "FILE:LINE", named in later messages
    image: str
    split: str
    class_name: str | None
    text: str
    audio: str | None
    speaker: str | None = None
    uttid: str | None = None


@dataclass
class RowChecker:
    """Checks the fields of rows against a root and bounds; `probe_audio` also opens each recording's header
    (its length, and that it is there) and `check_images` stats each image once."""

    root: Path
    bounds: Bounds
    probe_audio: bool = True
    check_images: bool = True
    _images_seen: set[str] = field(default_factory=set)

    def path(self, value: Any, where: str, name: str) -> str:
        """A path relative to the root, normalised, in / form; one that leaves the root is refused. Lexical, so a
        folder the user links in (root/train2014 -> /datasets/coco/train2014) is still followed."""
        if not isinstance(value, str) or not value.strip():
            raise UserError(f"{where}: {name}: expected a path, got {value!r}")
        if len(value) > MAX_PATH_CHARS or "\x00" in value:
            raise UserError(f"{where}: {name}: not a path (over {MAX_PATH_CHARS} characters, or a NUL byte)")
        given = value.strip().replace("\\", "/")
        root = os.path.normpath(self.root.absolute())
        full = os.path.normpath(os.path.join(root, given))  # an absolute path replaces the root
        if os.path.commonpath([root, full]) != root or full == root:
            raise UserError(f"{where}: {name}: {value} leaves the root {root}")
        return Path(os.path.relpath(full, root)).as_posix()

    def image(self, value: Any, where: str) -> str:
        image = self.path(value, where, "image")
        if self.check_images and image not in self._images_seen:
            if not (self.root / image).is_file():
                raise UserError(f"{where}: image: {self.root / image}: missing")
            self._images_seen.add(image)
        return image

    def text(self, value: Any, where: str, name: str = "text") -> str:
        if value is None:
            return ""
        if not isinstance(value, str):
            raise UserError(f"{where}: {name}: expected text, got {type(value).__name__}")
        if len(value) > self.bounds.text_chars:
            raise UserError(f"{where}: {name}: {len(value):,} characters, over the limit of {self.bounds.text_chars:,}")
        if "\x00" in value:
            raise UserError(f"{where}: {name}: holds NUL characters (a file that is not UTF-8?)")
        return value.strip()

    def name(self, value: Any, where: str, name: str) -> str | None:
        if value is None or value == "":
            return None
        if not isinstance(value, str) or len(value) > MAX_NAME_CHARS or "\x00" in value or not value.strip():
            raise UserError(f"{where}: {name}: expected a name of at most {MAX_NAME_CHARS} characters, got {value!r}")
        return value.strip()

    def split(self, value: Any, where: str) -> str:
        if value not in SPLITS:
            raise UserError(f"{where}: split: {value!r} is not one of {', '.join(SPLITS)}")
        return value

    def seconds(self, value: Any, where: str) -> float:
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            raise UserError(f"{where}: duration: expected seconds, got {value!r}") from None
        if not math.isfinite(seconds) or seconds <= 0:
            raise UserError(f"{where}: duration: expected seconds above 0, got {value!r}")
        self._bound_seconds(seconds, where, "duration")
        return seconds

    def _bound_seconds(self, seconds: float, where: str, name: str) -> None:
        if seconds > self.bounds.audio_seconds:
            raise UserError(f"{where}: {name}: {seconds:.1f} s, over the limit of {self.bounds.audio_seconds:g} s")

    def audio(self, value: Any, where: str, name: str = "audio") -> str | None:
        if value is None or value == "":
            return None
        audio = self.path(value, where, name)
        if self.probe_audio:
            import soundfile as sf

            path = self.root / audio
            if not path.is_file():
                raise UserError(f"{where}: {name}: {path}: missing")
            try:
                info = sf.info(str(path))
            except (sf.LibsndfileError, RuntimeError, OSError) as e:
                raise UserError(f"{where}: {name}: {path}: unreadable ({e})") from None
            self._bound_seconds(info.frames / max(info.samplerate, 1), where, name)
        return audio

    def caption(self, fields: dict[str, Any], where: str, image: str, split: str, class_name: str | None) -> CaptionRow:
        text = self.text(fields.get("text"), where)
        audio = self.audio(fields.get("audio"), where)
        if fields.get("duration") not in (None, ""):
            self.seconds(fields["duration"], where)
        if not text and audio is None:
            raise UserError(f"{where}: text, audio: neither is given (a caption needs its text or its recording)")
        speaker = self.name(fields.get("speaker"), where, "speaker")
        uttid = self.name(fields.get("uttid"), where, "uttid")
        return CaptionRow(where, image, split, class_name, text, audio, speaker, uttid)


def count_rows(path: Path, n: int, bounds: Bounds, setting: str) -> None:
    if n > bounds.rows:
        raise UserError(f"{path}: more than {bounds.rows:,} rows (the limit {setting}; raise it for a larger set)")


def read_jsonl(path: Path, bounds: Bounds, setting: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """("FILE:LINE", object) for each non-blank line: a JSON object, at most MAX_LINE_BYTES bytes."""
    try:
        f = open(path, "rb")
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror or e})") from None
    with f:
        line_no = rows = 0
        while True:
            raw = f.readline(MAX_LINE_BYTES + 1)
            if not raw:
                return
            line_no += 1
            where = f"{path}:{line_no}"
            if len(raw) > MAX_LINE_BYTES:
                raise UserError(f"{where}: longer than {MAX_LINE_BYTES >> 20} MB; one JSON object a line")
            try:
                text = raw.decode("utf-8-sig" if line_no == 1 else "utf-8")
            except UnicodeDecodeError as e:
                raise UserError(f"{where}: not UTF-8 ({e.reason} at byte {e.start})") from None
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as e:
                raise UserError(f"{where}: not JSON ({e.msg}, column {e.colno})") from None
            if not isinstance(row, dict):
                raise UserError(f"{where}: expected a JSON object, got {type(row).__name__}")
            rows += 1
            count_rows(path, rows, bounds, setting)
            yield where, row


def read_csv(
    path: Path, bounds: Bounds, setting: str, columns: tuple[str, ...]
) -> Iterator[tuple[str, dict[str, Any]]]:
    """("FILE:LINE", {column: value}) for each row of a CSV file with a header row; empty cells are absent."""
    try:
        f = open(path, encoding="utf-8-sig", newline="")
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror or e})") from None
    limit = csv.field_size_limit()
    csv.field_size_limit(MAX_LINE_BYTES)
    try:
        with f:
            reader = csv.reader(f)
            header = next(reader, None)
            if not header:
                raise UserError(f"{path}: empty; expected a header row naming the columns ({', '.join(columns)})")
            header = [h.strip() for h in header]
            unknown = next((h for h in header if h not in columns), None)
            if unknown is not None or len(set(header)) != len(header):
                what = f"unknown column {unknown!r}" if unknown is not None else "a column named twice"
                raise UserError(f"{path}:1: {what}; the columns are {', '.join(columns)}")
            rows = 0
            for cells in reader:
                where = f"{path}:{reader.line_num}"
                if not any(c.strip() for c in cells):
                    continue
                if len(cells) != len(header):
                    raise UserError(f"{where}: {len(cells)} cells, the header names {len(header)} columns")
                rows += 1
                count_rows(path, rows, bounds, setting)
                yield where, {h: c for h, c in zip(header, cells) if c.strip()}
    except csv.Error as e:
        raise UserError(f"{path}:{reader.line_num}: not CSV ({e})") from None
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 ({e.reason} at byte {e.start})") from None
    finally:
        csv.field_size_limit(limit)


def group_records(
    rows: list[CaptionRow], limit: int = 0, base: Path | None = None, stem_keys: bool = False
) -> list[Record]:
    """One record per image, in the order images first appear, its captions in row order; the first `limit` of
    each split (all when 0). The rows of one image must agree on its split and class; classes are numbered in
    name order, and either every row names one or none does (class_id -1). Keys come from the image's path
    without its suffix (its file name only with `stem_keys`). Paths stay relative to the root, or are joined to
    `base` (a source read without --root gives the steps absolute paths)."""
    by_image: dict[str, list[CaptionRow]] = {}
    for row in rows:
        same = by_image.setdefault(row.image, [])
        for name, attribute in (("split", "split"), ("class", "class_name")):
            if same and getattr(same[0], attribute) != getattr(row, attribute):
                raise UserError(
                    f"{row.where}: {name}: {getattr(row, attribute)!r} for {row.image}, which {same[0].where} "
                    f"gives {getattr(same[0], attribute)!r} (an image has one {name})"
                )
        if len(same) == MAX_CAPTIONS:
            raise UserError(f"{row.where}: more than {MAX_CAPTIONS} captions for {row.image}")
        same.append(row)
    named = [r for r in rows if r.class_name is not None]
    if named and len(named) != len(rows):
        lacking = next(r for r in rows if r.class_name is None)
        raise UserError(f"{lacking.where}: class: missing, while {named[0].where} names one (all rows or none)")
    classes = sorted({r.class_name for r in named})
    images = list(by_image)
    keys = make_keys([PurePosixPath(i).stem if stem_keys else str(PurePosixPath(i).with_suffix("")) for i in images])

    def located(path: str) -> str:
        return str(base / path) if base is not None else path

    records = []
    for key, image in zip(keys, images):
        captions = by_image[image]
        first = captions[0]
        attributes: dict[str, Any] = {}
        if any(c.speaker for c in captions):
            attributes["speakers"] = [c.speaker or "" for c in captions]
        if any(c.uttid for c in captions):
            attributes["uttids"] = [c.uttid or "" for c in captions]
        records.append(
            Record(
                key=key,
                split=first.split,
                class_id=classes.index(first.class_name) if first.class_name is not None else -1,
                class_name=first.class_name or "",
                image=located(image),
                captions=tuple(Caption(c.text, None if c.audio is None else located(c.audio)) for c in captions),
                attributes=attributes,
            )
        )
    return first_per_split(records, limit)
