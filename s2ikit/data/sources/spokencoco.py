"""SpokenCOCO with real speech: MS-COCO's captions read aloud (Hsu et al., 2021), about five utterances per image.

Layout under --root (data_manifests/spokencoco.toml; the paths are [spokencoco] settings):
    SpokenCOCO/SpokenCOCO_train.json    {"data": [{"image": "train2014/COCO_train2014_....jpg", "captions":
    SpokenCOCO/SpokenCOCO_val.json        [{"text", "speaker", "uttid", "wav": "wavs/train/0/....wav"}, ...]}, ...]}
    SpokenCOCO/wavs/...                 the "wav" paths, relative to SpokenCOCO/
    train2014/, val2014/                COCO 2014's images, the "image" paths (relative to --root)

The two files are Karpathy's split: the train file (train and restval) is the training split and the val file's
images the test split (`spokencoco.val_split`: "train" trains on them too, "none" leaves them out). No synthesis:
each recording is resampled to the feature rate; a caption's text is its transcript. COCO has no classes
(class_id -1). Entries are checked like a manifest's rows (`caption_rows`): one line names the file, the entry
and the field.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from s2ikit.config import PrepareFlag, PrepareSource, limit_flag
from s2ikit.data.records import Record
from s2ikit.data.sources.base import register_dataset
from s2ikit.data.sources.caption_rows import MAX_CAPTIONS, Bounds, CaptionRow, RowChecker, group_records
from s2ikit.data.sources.layout import OnDiskSource, check_layout
from s2ikit.utils.checks import at_least, checked, positive, setting
from s2ikit.utils.errors import UserError

# SpokenCOCO_train.json is a few hundred MB: a file far larger is not this data set, and json reads it whole.
MAX_JSON_BYTES = 4 << 30


@dataclass(frozen=True)
@checked("spokencoco")
class SpokenCOCOConfig:
    """SpokenCOCO: COCO 2014 images with their captions read aloud (Karpathy's split)."""

    # Paths relative to --root (or absolute). The JSON's "wav" entries are relative to audio_root, its "image"
    # entries (e.g. "val2014/COCO_val2014_000000325114.jpg") to image_root.
    train_json: str = "SpokenCOCO/SpokenCOCO_train.json"
    val_json: str = "SpokenCOCO/SpokenCOCO_val.json"
    audio_root: str = "SpokenCOCO"
    image_root: str = ""  # the folder holding train2014/ and val2014/; "" = --root
    # The val file's images: "test" (Karpathy's held-out images), "train" (added to training), "none" (left out).
    val_split: Literal["test", "train", "none"] = "test"
    # Open each recording's header when indexing (over 600,000 files: slow on a network file system). Off, a
    # missing or unreadable recording is reported by the speech step, in failures.jsonl.
    probe_audio: bool = False
    max_text_chars: int = setting(1000, at_least(1))  # one transcript
    max_audio_seconds: float = setting(60.0, positive)  # one recording, when probe_audio reads its header
    max_entries: int = setting(1_000_000, at_least(1))  # images of one JSON file (the train file has ~118,000)
    limit: int = setting(0, at_least(0))  # keep only the first N images of each split; 0 = all


class SpokenCOCOSource(OnDiskSource):
    name = "spokencoco"
    needs_tts = False

    def identity(self) -> dict[str, Any]:
        return self._identity([self.config.train_json, self.config.val_json])

    def check(self) -> None:
        cfg = self.config
        wanted = [cfg.train_json, cfg.audio_root, *((cfg.val_json,) if cfg.val_split != "none" else ())]
        wanted += [cfg.image_root] if cfg.image_root else []
        check_layout(self.root, self.manifest, wanted)

    def _entries(self, path: Path) -> list[Any]:
        try:
            size = os.stat(path).st_size
            if size > MAX_JSON_BYTES:
                raise UserError(
                    f"{path}: {size / 2**30:.1f} GB, over the {MAX_JSON_BYTES >> 30} GB a SpokenCOCO file has"
                )
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise UserError(f"{path}: not readable JSON ({e})") from None
        entries = raw.get("data") if isinstance(raw, dict) else None
        if not isinstance(entries, list):
            raise UserError(f'{path}: expected {{"data": [{{"image": ..., "captions": [...]}}, ...]}}')
        if len(entries) > self.config.max_entries:
            raise UserError(
                f"{path}: {len(entries):,} entries, over spokencoco.max_entries ({self.config.max_entries:,})"
            )
        return entries

    def _rows(self, path: Path, split: str, images: RowChecker, recordings: RowChecker) -> list[CaptionRow]:
        """The file's utterances; paths checked below image_root and audio_root, then given relative to --root."""
        cfg, rows = self.config, []
        for n, entry in enumerate(self._entries(path)):
            where = f"{path}: entry {n}"
            if not isinstance(entry, dict):
                raise UserError(f"{where}: expected an object with image and captions")
            image = _under(cfg.image_root, images.image(entry.get("image"), where))
            captions = entry.get("captions")
            if not isinstance(captions, list) or not captions:
                raise UserError(f"{where}: captions: expected a list of utterances, got {captions!r}")
            if len(captions) > MAX_CAPTIONS:
                raise UserError(f"{where}: captions: {len(captions)} utterances, over the limit of {MAX_CAPTIONS}")
            for k, caption in enumerate(captions):
                at = f"{where}: captions[{k}]"
                if not isinstance(caption, dict) or not caption.get("wav"):
                    raise UserError(f"{at}: wav: missing (each utterance names its recording)")
                rows.append(
                    CaptionRow(
                        where=at,
                        image=image,
                        split=split,
                        class_name=None,
                        text=images.text(caption.get("text"), at),
                        audio=_under(cfg.audio_root, recordings.audio(caption["wav"], at, "wav")),
                        speaker=images.name(caption.get("speaker"), at, "speaker"),
                        uttid=images.name(caption.get("uttid"), at, "uttid"),
                    )
                )
        return rows

    def index(self) -> list[Record]:
        self.check()
        cfg, root = self.config, Path(self.root or "")
        self.notes, self.left_out = [], []
        bounds = Bounds(rows=cfg.max_entries, text_chars=cfg.max_text_chars, audio_seconds=cfg.max_audio_seconds)
        # The JSON's paths may not leave their folders; the folders themselves are settings and may be anywhere.
        images = RowChecker(root / cfg.image_root, bounds, probe_audio=False)
        recordings = RowChecker(root / cfg.audio_root, bounds, probe_audio=cfg.probe_audio, check_images=False)
        val_split = {"none": None, "train": "train", "test": "test"}[cfg.val_split]
        rows, counts = [], {}
        for name, kind, split in ((cfg.train_json, "train", "train"), (cfg.val_json, "val", val_split)):
            if split is None:
                continue
            found = self._rows(root / name, split, images, recordings)
            counts[f"{kind}_images"] = len({r.image for r in found})
            counts[f"{kind}_captions"] = len(found)
            rows += found
        records = group_records(rows, cfg.limit, stem_keys=True)
        if cfg.val_split != "test":
            self.notes.append(
                f"spokencoco: val_split = {cfg.val_split}: the val file's images are not the test split, so results "
                "are not comparable with Karpathy-split ones"
            )
        self._note_counts(counts, records)
        return records


def _under(folder: str, path: str | None) -> str | None:
    """A path checked below `folder`, given relative to --root (or absolute, when the folder is)."""
    if path is None or not folder:
        return path
    return str(PurePosixPath(folder) / path)


register_dataset(
    "spokencoco",
    SpokenCOCOSource,
    SpokenCOCOConfig,
    PrepareSource(
        "SpokenCOCO: COCO 2014 images with about 5 recorded utterances each (no TTS); Karpathy's split.\n\n"
        "Example: s2ikit prepare spokencoco --root data/coco --out runs/spokencoco/data --workers 16",
        (
            PrepareFlag(
                "--val-split",
                "spokencoco.val_split",
                "What the val file's images are: test (default), train, or none (left out).",
                str,
            ),
            limit_flag("spokencoco"),
        ),
    ),
    terms="COCO's images are under their Flickr owners' licences and SpokenCOCO is distributed for research; "
    "check both before using these weights beyond research.",
)
