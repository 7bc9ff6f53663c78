"""Places-subset with real speech: Places Audio Caption utterances (Harwath et al.) whose Places205 image
belongs to one of seven indoor classes (bedroom, dinette, dining_room, home_office, hotel_room, kitchenette,
living_room), one spoken caption per image.

Layout under --root (paths configurable in [places]):
    PlacesAudio_400k_distro/metadata/train.json   {"data": [{"wav", "image", "uttid", "speaker", ...}, ...]}
    PlacesAudio_400k_distro/wavs/...              the "wav" paths of the metadata, relative to audio_root
    images256/b/bedroom/gsun_....jpg              Places205 images, the "image" paths, relative to image_root

The class is the folder after the one-letter folder ("d/dinette/home/x.jpg" -> dinette). S2IGAN's subset
split is not published, so each image goes to test by a stable hash of its path (places.test_fraction).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from s2ikit.config import PrepareFlag, PrepareSource, Preset, limit_flag
from s2ikit.data.records import Caption, Record
from s2ikit.data.sources.base import register_dataset
from s2ikit.data.sources.layout import (
    OnDiskSource,
    check_layout,
    first_per_split,
    make_keys,
)
from s2ikit.utils.checks import at_least, checked, fraction, items, setting
from s2ikit.utils.errors import UserError
from s2ikit.utils.seeds import derive_seed

FIELDS = ("wav", "image", "uttid", "speaker")


def scene_class(image: str) -> str:
    """Places205 category of an image path: "b/bedroom/gsun_1.jpg" -> bedroom, "d/dinette/home/x.jpg" -> dinette."""
    parts = PurePosixPath(image.replace("\\", "/")).parts
    if len(parts) >= 3 and len(parts[0]) == 1:
        return parts[1]
    return parts[0] if len(parts) >= 2 else ""


def in_test(image: str, fraction: float) -> bool:
    return derive_seed(0, "places/test", image) / 2**63 < fraction


@dataclass(frozen=True)
@checked("places")
class PlacesConfig:
    """Places-subset: Places Audio Caption utterances whose Places205 image is in one of `classes`."""

    # Paths relative to --root (or absolute). The metadata JSON's "wav" entries are relative to audio_root,
    # its "image" entries (e.g. "b/bedroom/gsun_x.jpg") relative to image_root.
    metadata: str = "PlacesAudio_400k_distro/metadata/train.json"
    audio_root: str = "PlacesAudio_400k_distro"
    image_root: str = "images256"
    classes: tuple[str, ...] = setting(
        ("bedroom", "dinette", "dining_room", "home_office", "hotel_room", "kitchenette", "living_room"), items()
    )
    # S2IGAN's subset split is not published: each image goes to test when a hash of its path falls below
    # this fraction (stable across runs and machines). 2,870 / 13,803 pairs in the paper is 0.208.
    test_fraction: float = setting(0.208, fraction)
    limit: int = setting(0, at_least(0))  # keep only the first N images of each split; 0 = all


class PlacesSource(OnDiskSource):
    name = "places"
    needs_tts = False

    def __init__(self, preset: Preset, root: Path | None):
        super().__init__(preset, root)
        if not self.config.classes or not 0.0 < self.config.test_fraction < 1.0:
            raise UserError("places: classes must not be empty and test_fraction in (0, 1)")

    def identity(self) -> dict[str, Any]:
        return self._identity([self.config.metadata])

    def check(self) -> None:
        cfg = self.config
        check_layout(self.root, self.manifest, (cfg.metadata, cfg.audio_root, cfg.image_root))

    def _entries(self, path: Path) -> list[dict[str, Any]]:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise UserError(f"{path}: not readable JSON ({e})") from None
        entries = raw.get("data") if isinstance(raw, dict) else raw
        if not isinstance(entries, list):
            raise UserError(f'{path}: expected {{"data": [...]}} or a list of entries')
        for n, entry in enumerate(entries):
            lacking = [f for f in FIELDS if not isinstance(entry, dict) or not isinstance(entry.get(f), str)]
            if lacking:
                raise UserError(f"{path}: entry {n} has no '{lacking[0]}' text field (needs {', '.join(FIELDS)})")
        return entries

    def index(self) -> list[Record]:
        self.check()
        cfg, root = self.config, Path(self.root or "")
        self.notes, self.left_out = [], []
        by_image: dict[str, list[dict[str, Any]]] = {}
        for entry in self._entries(root / cfg.metadata):
            if scene_class(entry["image"]) in cfg.classes:
                by_image.setdefault(entry["image"], []).append(entry)
        if not by_image:
            raise UserError(f"{root / cfg.metadata}: no entry's image is in the classes {', '.join(cfg.classes)}")
        images = list(by_image)  # metadata order
        keys = make_keys([str(PurePosixPath(scene_class(i)) / PurePosixPath(i).stem) for i in images])
        drafts = [
            Record(
                key=key,
                split="test" if in_test(image, cfg.test_fraction) else "train",
                class_id=cfg.classes.index(scene_class(image)),
                class_name=scene_class(image),
                image=str(PurePosixPath(cfg.image_root) / image),
                captions=tuple(
                    Caption(
                        e.get("asr_text", "") if isinstance(e.get("asr_text"), str) else "",
                        f"{cfg.audio_root}/{e['wav']}",
                    )
                    for e in by_image[image]
                ),
                attributes={
                    "uttids": [e["uttid"] for e in by_image[image]],
                    "speakers": [e["speaker"] for e in by_image[image]],
                },
            )
            for key, image in zip(keys, images)
        ]
        # S2IGAN's 13,803 pairs are not a fixed, published selection: report what this copy holds instead.
        records = first_per_split(drafts, cfg.limit)
        split_counts = {s: sum(r.split == s for r in drafts) for s in ("train", "test")}
        self.notes.append(
            f"places: {len(drafts):,} images ({split_counts['train']:,} train / {split_counts['test']:,} test) in "
            f"{len({r.class_id for r in drafts})} classes; the paper's subset had 13,803 pairs (10,933 / 2,870), "
            "a selection that is not published, so counts are not compared"
        )
        self._note_counts({}, records)
        return records


register_dataset(
    "places",
    PlacesSource,
    PlacesConfig,
    PrepareSource(
        "Places-subset: Places Audio Caption utterances of 7 indoor classes, 1 per image (recorded, no TTS).\n\n"
        "Example: s2ikit prepare places --root data/places --out runs/places/data --workers 4",
        (
            PrepareFlag(
                "--metadata",
                "places.metadata",
                "Places Audio Caption metadata JSON (default: places.metadata under --root).",
                Path,
            ),
            limit_flag("places"),
        ),
    ),
    terms="Places and the Places Audio Caption Corpus are distributed for non-commercial research; check their "
    "terms before using these weights beyond research.",
)
