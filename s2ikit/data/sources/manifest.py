"""Any spoken-caption data set, from a manifest: a JSONL or CSV file listing images with their captions.

JSONL, one JSON object a line: one caption (several lines may name the same image), or one image with its
captions (a caption is its text, or an object with its fields):

    {"image": "photos/cat1.jpg", "split": "train", "class": "cat", "text": "a grey cat asleep on a sofa"}
    {"image": "photos/cat1.jpg", "split": "train", "class": "cat", "audio": "speech/cat1-b.wav"}
    {"image": "photos/dog4.jpg", "split": "test", "class": "dog", "captions": ["a dog", {"audio": "d4.wav"}]}

CSV: a header row naming the columns (`image,split,class,text,audio`, in any order, any of the optional ones
left out), then one caption a row.

Fields: `image` and `split` (train or test) are required; `class` is optional (every row names one, or none
does); each caption has its `text`, its recording (`audio`), or both, and may give `duration` (seconds),
`speaker` and `uttid`. Paths are relative to manifest.root (--root; by default the manifest's folder) and may not
leave it. A caption with a recording is that recording (its text, if any, is the transcript shown in grids), as
with Flickr8k and Places; one with text alone is spoken by the TTS, as CUB's. Every row is checked when the
index is built, and a problem is one line naming the file, the line and the field (`caption_rows`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from PIL import Image

from s2ikit.config import PrepareFlag, PrepareSource, Preset, as_dict, limit_flag
from s2ikit.data.records import Record
from s2ikit.data.sources.base import register_dataset
from s2ikit.data.sources.caption_rows import (
    MAX_CAPTIONS,
    Bounds,
    CaptionRow,
    RowChecker,
    group_records,
    read_csv,
    read_jsonl,
)
from s2ikit.data.sources.layout import file_stamps, load_photo
from s2ikit.utils.checks import at_least, checked, positive, setting
from s2ikit.utils.errors import UserError

CAPTION_FIELDS = ("text", "audio", "duration", "speaker", "uttid")
IMAGE_FIELDS = ("image", "split", "class")
JSONL_FIELDS = (*IMAGE_FIELDS, *CAPTION_FIELDS, "captions")
CSV_COLUMNS = (*IMAGE_FIELDS, *CAPTION_FIELDS)
SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}


@dataclass(frozen=True)
@checked("manifest")
class ManifestConfig:
    """[manifest]: which manifest, where its paths start, and the sizes it may reach."""

    file: str = ""  # the manifest, .jsonl or .csv (--manifest); a relative path is taken from the working folder
    root: str = ""  # the folder the manifest's paths are relative to (--root); "" = the manifest's own folder
    format: Literal["auto", "jsonl", "csv"] = "auto"  # auto: by the file's suffix (.jsonl, .ndjson, .csv)
    # Open each recording's header when indexing: a missing, unreadable or over-long one is then one line naming
    # its row. Off for millions of recordings on a slow file system: the speech step still reports each one.
    probe_audio: bool = True
    max_rows: int = setting(2_000_000, at_least(1))  # lines of the manifest (captions, or images in JSONL)
    max_text_chars: int = setting(1000, at_least(1))  # one caption's text: a sentence or a few, not a page
    max_audio_seconds: float = setting(60.0, positive)  # one recording (a row's duration, or its header)
    limit: int = setting(0, at_least(0))  # keep only the first N images of each split; 0 = all


class ManifestSource:
    name = "manifest"

    def __init__(self, preset: Preset, root: Path | None):
        self.config = preset.manifest
        self._given_root = root  # from Python (PrepareContext); the command sets manifest.root instead
        self.notes: list[str] = []
        self.left_out: list[dict[str, Any]] = []

    @property
    def file(self) -> Path:
        if not self.config.file:
            raise UserError("manifest: --manifest FILE is required: a .jsonl or .csv file listing images and captions")
        return Path(self.config.file)

    @property
    def root(self) -> Path:
        if self.config.root:
            return Path(self.config.root)
        return Path(self._given_root) if self._given_root is not None else self.file.parent

    @property
    def format(self) -> str:
        if self.config.format != "auto":
            return self.config.format
        found = SUFFIXES.get(self.file.suffix.lower())
        if found is None:
            raise UserError(
                f"{self.file}: cannot tell JSONL from CSV by its suffix; --set manifest.format=jsonl or csv"
            )
        return found

    @property
    def bounds(self) -> Bounds:
        cfg = self.config
        return Bounds(rows=cfg.max_rows, text_chars=cfg.max_text_chars, audio_seconds=cfg.max_audio_seconds)

    @cached_property
    def needs_tts(self) -> bool:
        """Whether some caption has text but no recording (the TTS settings then belong to the data set)."""
        return any(not caption.get("audio") for _, fields in self._raw() for caption in self._captions_of(fields))

    def identity(self) -> dict[str, Any]:
        file = self.file.absolute()
        return {"source": self.name, "version": 1, "file": str(file), "root": str(self.root.absolute()),
                "config": as_dict(self.config), "files": file_stamps(file.parent, [file.name])}  # fmt: skip

    def check(self) -> None:
        if not self.file.is_file():
            raise UserError(f"--manifest {self.file}: no such file")
        if not self.root.is_dir():
            raise UserError(f"--root {self.root}: not a folder (the manifest's paths are relative to it)")
        _ = self.format

    def _raw(self) -> list[tuple[str, dict[str, Any]]]:
        if self.format == "jsonl":
            return list(read_jsonl(self.file, self.bounds, "manifest.max_rows"))
        return list(read_csv(self.file, self.bounds, "manifest.max_rows", CSV_COLUMNS))

    @staticmethod
    def _captions_of(fields: dict[str, Any]) -> list[dict[str, Any]]:
        """A row's captions: its `captions` list (JSONL), else the row itself."""
        captions = fields.get("captions")
        if not isinstance(captions, list):
            return [fields]
        return [c if isinstance(c, dict) else {"text": c} for c in captions]

    def _rows(self, checker: RowChecker, where: str, fields: dict[str, Any]) -> list[CaptionRow]:
        unknown = next((k for k in fields if k not in JSONL_FIELDS), None)
        if unknown is not None:
            raise UserError(f"{where}: {unknown}: not a field of a manifest row (fields: {', '.join(JSONL_FIELDS)})")
        image = checker.image(fields.get("image"), where)
        split = checker.split(fields.get("split"), where)
        class_name = checker.name(fields.get("class"), where, "class")
        if "captions" not in fields:
            return [checker.caption(fields, where, image, split, class_name)]
        captions = fields["captions"]
        mixed = next((k for k in CAPTION_FIELDS if k in fields), None)
        if mixed is not None:
            raise UserError(f"{where}: {mixed}: a row with a captions list gives each caption's {mixed} in the list")
        if not isinstance(captions, list) or not captions:
            raise UserError(f"{where}: captions: expected a list of captions (texts or objects), got {captions!r}")
        if len(captions) > MAX_CAPTIONS:
            raise UserError(f"{where}: captions: {len(captions)} captions, over the limit of {MAX_CAPTIONS}")
        rows = []
        for n, caption in enumerate(captions):
            at = f"{where}: captions[{n}]"
            if isinstance(caption, str):
                caption = {"text": caption}
            if not isinstance(caption, dict):
                raise UserError(f"{at}: expected a text or an object, got {type(caption).__name__}")
            stray = next((k for k in caption if k not in CAPTION_FIELDS), None)
            if stray is not None:
                raise UserError(f"{at}: {stray}: not a field of a caption (fields: {', '.join(CAPTION_FIELDS)})")
            rows.append(checker.caption(caption, at, image, split, class_name))
        return rows

    def index(self) -> list[Record]:
        self.check()
        self.notes, self.left_out = [], []
        checker = RowChecker(self.root, self.bounds, probe_audio=self.config.probe_audio)
        rows = [row for where, fields in self._raw() for row in self._rows(checker, where, fields)]
        if not rows:
            raise UserError(f"{self.file}: no rows; expected one caption (or one image with its captions) a line")
        records = group_records(rows, self.config.limit, base=self.root.absolute())
        per_split = {s: sum(r.split == s for r in records) for s in ("train", "test")}
        recorded = sum(c.audio is not None for r in records for c in r.captions)
        spoken = sum(len(r.captions) for r in records) - recorded
        self.notes.append(
            f"manifest: {len(records):,} images ({per_split['train']:,} train / {per_split['test']:,} test), "
            f"{recorded:,} recorded captions and {spoken:,} spoken by the TTS"
            + (f" (--limit {self.config.limit})" if self.config.limit else "")
        )
        for split, n in per_split.items():
            if n == 0:
                self.notes.append(f"manifest: no image in the {split} split")
        return records

    def load_image(self, record: Record, size: int) -> Image.Image:
        return load_photo(Path(record.image), size)  # absolute: the index joins the root to each path


register_dataset(
    "manifest",
    ManifestSource,
    ManifestConfig,
    PrepareSource(
        "Any spoken-caption data set: a JSONL or CSV manifest of images with their captions' text and/or "
        "recordings.\n\n"
        "Each row: image, split (train or test), class (optional), text and/or audio (a recording is used as is; "
        "text alone is spoken by the TTS). Paths are relative to the manifest's folder or --root.\n\n"
        "Example: s2ikit prepare manifest --manifest my_data/captions.jsonl --out runs/mine/data --workers 4",
        (
            PrepareFlag("--manifest", "manifest.file", "The manifest: a .jsonl or .csv file (see README).", Path),
            PrepareFlag("--root", "manifest.root", "The folder its paths are relative to (default: its folder).", Path),
            limit_flag("manifest"),
        ),
        root=False,
        tts=True,
    ),
    terms="These weights were trained on the data set its owner's manifest lists; its terms are the owner's.",
)
