"""What the on-disk data sets share: their manifests (required files, published counts), fast layout checks,
plain-text tables, sample keys, per-split limits and photo loading.

Photos are stored square, as every batch in training is stacked into one tensor: the shorter side is
resized to the preset's size, then the centre is cropped (DF-GAN and S2IGAN resize, then crop; they crop
at random per epoch, the shards keep the centre).
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from s2ikit.config import Preset, as_dict, manifests_dir
from s2ikit.data.records import Caption, Record
from s2ikit.utils.atomic import fingerprint
from s2ikit.utils.errors import SampleError, UserError

try:
    import tomllib
except ImportError:  # pragma: no cover
    import tomli as tomllib

# A photo is shrunk to a few hundred pixels a side, and those of CUB, Oxford-102 and Places are well under 1 MP.
# Decoding costs about 15 bytes a pixel (RGB plus the resize), so 50 MP bounds one image at about 750 MB, and a
# file claiming more (a decompression bomb, or a scan that does not belong here) is refused from its header.
MAX_SOURCE_PIXELS = 50_000_000

_NOT_KEY = re.compile(r"[^A-Za-z0-9_\-]+")


@dataclass(frozen=True)
class Manifest:
    """`data_manifests/<name>.toml`: what a raw copy of the data set must contain and what it should count."""

    name: str
    layout: str  # how messages name the layout, e.g. "CUB-200-2011"
    required: tuple[str, ...]  # paths relative to --root that must exist before anything runs
    expected: dict[str, int] = field(default_factory=dict)  # published counts, compared after indexing


def read_manifest(name: str) -> Manifest:
    path = manifests_dir() / f"{name}.toml"
    try:
        raw = tomllib.loads(path.read_text())
        return Manifest(
            name=name,
            layout=raw["dataset"]["layout"],
            required=tuple(raw["layout"]["required"]),
            expected={k: int(v) for k, v in raw.get("expected", {}).items()},
        )
    except (OSError, KeyError, tomllib.TOMLDecodeError) as e:
        raise UserError(f"{path}: not a valid data manifest ({type(e).__name__}: {e})") from None


def check_layout(root: Path | None, manifest: Manifest, required: Iterable[str] = ()) -> Path:
    """The root, once every required path exists; otherwise one line naming the first missing one."""
    hint = f"expected the {manifest.layout} layout (see README, 'Data sets')"
    if root is None:
        raise UserError(f"{manifest.name}: --root is required; {hint}")
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: not a folder; {hint}")
    for relative in (*manifest.required, *required):
        if not (root / relative).exists():
            raise UserError(f"{root / relative}: missing; {hint}")
    return root


def count_notes(manifest: Manifest, counts: dict[str, int], limit: int) -> list[str]:
    """One warning per count that differs from the published one (a partial copy, or a --limit run)."""
    why = f" (--limit {limit})" if limit else " (a partial or modified copy?)"
    return [
        f"{manifest.name}: {counts[k]:,} {k.replace('_', ' ')}, the published data set has {v:,}{why}"
        for k, v in manifest.expected.items()
        if k in counts and counts[k] != v
    ]


def file_stamps(root: Path, paths: Iterable[str]) -> dict[str, list[int] | None]:
    """Size and mtime of the files that define the index: editing one of them rebuilds the index."""
    stamps: dict[str, list[int] | None] = {}
    for relative in paths:
        try:
            st = os.stat(root / relative)
            stamps[relative] = [st.st_size, st.st_mtime_ns]
        except OSError:
            stamps[relative] = None
    return stamps


def tree_stamp(root: Path, folder: str) -> str | None:
    """One digest of the size and mtime of every file under `folder` (caption files, one per image): repairing
    or adding one rebuilds the index. None when the folder is missing."""
    top = root / folder
    if not top.is_dir():
        return None
    stamps = []
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames.sort()
        for name in sorted(filenames):
            try:
                st = os.stat(os.path.join(dirpath, name))
            except OSError:
                continue
            stamps.append([os.path.relpath(os.path.join(dirpath, name), top), st.st_size, st.st_mtime_ns])
    return fingerprint(stamps)


def read_table(path: Path, fields: int, numeric: int = 0) -> list[list[str]]:
    """Whitespace-separated rows of at least `fields` columns (the rest joined into the last one); the first
    `numeric` columns must be numbers."""
    rows = []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read ({e})") from None
    for line_no, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=fields - 1)
        if len(parts) < fields:
            raise UserError(f"{path}:{line_no}: expected {fields} columns, found {len(parts)}: {line.strip()!r}")
        bad = next((v for v in parts[:numeric] if not _is_number(v)), None)
        if bad is not None:
            raise UserError(f"{path}:{line_no}: '{bad}' is not a number")
        rows.append(parts)
    return rows


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_caption_lines(path: Path, limit: int) -> list[str]:
    """The first `limit` non-empty lines of a caption file; SampleError when it is missing or unreadable.

    Caption files must be UTF-8 (a byte-order mark is allowed), as Reed et al.'s are. Anything else is refused
    rather than guessed: a latin-1 file decoded with replacement characters would be spoken with the wrong
    words, and UTF-16 would reach the TTS as text full of NUL characters. The image is then left out and
    failures.jsonl names the file."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SampleError(f"{path}: missing caption file") from None
    except OSError as e:
        raise SampleError(f"{path}: unreadable caption file ({e.strerror or e})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        utf16 = " (UTF-16?)" if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
        raise SampleError(
            f"{path}: caption file is not UTF-8{utf16}: byte 0x{raw[e.start]:02x} at offset {e.start}; save it as UTF-8"
        ) from None
    if "\x00" in text:
        raise SampleError(f"{path}: caption file is not UTF-8 text (it holds NUL bytes: UTF-16?); save it as UTF-8")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise SampleError(f"{path}: caption file is empty")
    return lines[:limit]


def make_keys(names: Sequence[str]) -> list[str]:
    """Sample keys from image names: anything but letters, digits, '_' and '-' becomes '_'; repeats get -2, -3."""
    keys, seen = [], set()
    for name in names:
        base = _NOT_KEY.sub("_", name).strip("_") or "image"
        key, n = base, 1
        while key in seen:
            n += 1
            key = f"{base}-{n}"
        seen.add(key)
        keys.append(key)
    return keys


def first_per_split(records: list[Record], limit: int) -> list[Record]:
    """The first `limit` records of each split in index order (all when limit is 0)."""
    if limit <= 0:
        return records
    taken: dict[str, int] = {}
    kept = []
    for record in records:
        if taken.get(record.split, 0) < limit:
            taken[record.split] = taken.get(record.split, 0) + 1
            kept.append(record)
    return kept


def index_failure(key: str, error: str) -> dict[str, Any]:
    """An image left out at index time, in failures.jsonl's format."""
    return {"step": "index", "key": key, "caption": None, "error": error}


def load_photo(
    path: Path, size: int, crop: Callable[[int, int], tuple[int, int, int, int]] | None = None
) -> Image.Image:
    """RGB; cropped to `crop(width, height)` = (left, top, right, bottom) if given; shorter side resized to
    `size`; the centre square."""
    try:
        with warnings.catch_warnings():
            # PIL's own warning names no file and comes only at 89 MP; MAX_SOURCE_PIXELS is checked instead.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:  # reads the header only
                if im.width * im.height > MAX_SOURCE_PIXELS:
                    raise SampleError(
                        f"{path}: {im.width}x{im.height} pixels ({im.width * im.height / 1e6:.0f} MP) is over the "
                        f"{MAX_SOURCE_PIXELS // 1_000_000} MP limit for source images; not decoded"
                    )
                image = im.convert("RGB")  # decodes the whole file: a truncated JPEG fails here, not later
    except FileNotFoundError:
        raise SampleError(f"{path}: missing image") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise SampleError(f"{path}: unreadable image ({e})") from None
    if crop is not None:
        image = image.crop(crop(*image.size))
    w, h = image.size
    scale = size / min(w, h)
    rw, rh = max(size, round(w * scale)), max(size, round(h * scale))
    image = image.resize((rw, rh), Image.Resampling.LANCZOS)
    left, top = (rw - size) // 2, (rh - size) // 2
    return image.crop((left, top, left + size, top + size))


class OnDiskSource:
    """What the sources read from users' folders share: their preset section (named like the source), the
    root, the manifest, the notes and left-out lists `prepare` reports, and the shape of their identity."""

    name: str

    def __init__(self, preset: Preset, root: Path | None):
        self.config = getattr(preset, self.name)
        self.root = root
        self.manifest = read_manifest(self.name)
        self.notes: list[str] = []
        self.left_out: list[dict[str, Any]] = []
        if self.config.limit < 0:
            raise UserError(f"{self.name}.limit must be at least 0")

    def load_image(self, record: Record, size: int) -> Image.Image:
        return load_photo(Path(self.root or "") / record.image, size)

    def _attach_captions(self, drafts: list[Record], caption_file: Callable[[Record], Path], where: Path,
                         what: str) -> list[Record]:  # fmt: skip
        """The first `limit` drafts of each split with their caption lines; an image whose file is missing or
        unreadable is left out (and reported), and none at all is an error naming the folder."""
        records = []
        for draft in first_per_split(drafts, self.config.limit):
            try:
                lines = read_caption_lines(caption_file(draft), self.config.captions_per_image)
            except SampleError as e:
                self.left_out.append(index_failure(draft.key, str(e)))
                continue
            records.append(Record(**{**draft.__dict__, "captions": tuple(Caption(t) for t in lines)}))
        if not records:
            raise UserError(f"{where}: no caption file found for any image; expected {what}")
        return records

    def _note_counts(self, counts: dict[str, int], records: list[Record]) -> None:
        """Warn where counts differ from the published ones, and say so when --limit made a subset."""
        self.notes += count_notes(self.manifest, counts, 0)
        if self.config.limit:
            self.notes.append(f"{self.name}: --limit {self.config.limit}: {len(records)} images indexed (a first try)")

    def _identity(self, files: list[str], trees: tuple[str, ...] = ()) -> dict[str, Any]:
        """The settings, the root and the stamps of the files (and of the files under `trees`, the caption
        folders read at index time) that decide the index."""
        root = Path(self.root or "")
        config = as_dict(self.config)
        identity = {"source": self.name, "version": 1, "root": str(root.resolve()), "config": config}
        identity["files"] = file_stamps(root, files)
        if trees:
            identity["trees"] = {folder: tree_stamp(root, folder) for folder in trees}
        return identity


def split_counts(records: list[Record]) -> dict[str, int]:
    """Images and classes per split, to compare with StackGAN's published split."""
    counts = {}
    for split in ("train", "test"):
        counts[f"{split}_images"] = sum(r.split == split for r in records)
        counts[f"{split}_classes"] = len({r.class_id for r in records if r.split == split})
    return counts
