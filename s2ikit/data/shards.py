"""The shard schema: which tar members make one sample. `prepare` writes shards and the loader reads them only
through this module.

A sample is a run of consecutive members sharing a key (WebDataset's convention: the key is the member name up to
its first dot; keys are plain, see `records.KEY_PATTERN`):

    KEY.png or KEY.jpg   the image at the prepared size
    KEY.json             key, dataset, split, class_id, class_name, attributes and captions, a list of
                         {"index": NN, "text": ..., "frames": T}; in a data set spoken by several TTS voices
                         each caption also names who spoke it and how: "voice" (ENGINE:VOICE, e.g.
                         "espeak-ng:en-us+f3"), "length_scale" (> 1 spoke slower) and "pitch" (x the voice's own)
    KEY.cNN.flac         caption NN's speech: 16-bit mono FLAC at the feature rate
    KEY.cNN.npy          caption NN's log-mel, (T, n_mels), a plain .npy (never a pickle)

Beside each split's shards, `shards/<split>/sizes.json` maps each shard's file name to its sample count (open_clip's
convention): `prepare` writes it with `write_sizes` when it finalizes, the loader reads it with `read_sizes`, and
`has_split` says whether a prepared split exists.

A shard is untrusted input. The reader skips members that are not regular files, whose name is not a plain key
followed by a suffix of the schema (a path such as `../x` or `/etc/x`, a key with `/`, `KEY.gif`) or that are
larger than any sample member can be, with one warning per shard naming it; nothing from a shard is written to
disk or unpickled, and images larger than `MAX_SAMPLE_PIXELS` are refused before they are decoded.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from PIL import Image

from s2ikit.data.records import KEY_PATTERN, Record
from s2ikit.utils.atomic import write_json
from s2ikit.utils.errors import UserError

IMAGE_EXTENSIONS = ("png", "jpg", "jpeg")  # prepare writes png or jpg; jpeg is read for hand-made shards
META = "json"
_CAPTION = re.compile(r"^c(\d{2})\.(flac|npy)$")
# Prepared images are a few hundred pixels a side and an utterance is a few hundred KB: far larger members are
# not samples, and reading them whole would only cost memory.
MAX_MEMBER_BYTES = 64 << 20
MAX_SAMPLE_PIXELS = 4096 * 4096
SIZES = "sizes.json"  # in shards/<split>/: {shard file name: samples in it}


def split_folder(data_dir: str | Path, split: str) -> Path:
    """Where a prepared data set keeps `split`'s shards and their sizes.json."""
    return Path(data_dir) / "shards" / split


def write_sizes(data_dir: str | Path, split: str, sizes: dict[str, int]) -> None:
    """`split`'s sizes.json, atomically; left untouched when unchanged (a rerun changes no file)."""
    write_json(split_folder(data_dir, split) / SIZES, sizes, only_if_changed=True)


def read_sizes(data_dir: str | Path, split: str) -> dict[str, int]:
    """`split`'s {shard file name: samples}, or one line naming the file when it is missing or unreadable."""
    path = split_folder(data_dir, split) / SIZES
    if not path.is_file():
        raise UserError(f"{path}: missing; is {data_dir} a finished `s2ikit prepare` output?")
    try:
        sizes = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise UserError(f"{path}: not readable as JSON ({e}); rerun `s2ikit prepare`") from None
    if not isinstance(sizes, dict) or not all(isinstance(n, int) for n in sizes.values()):
        raise UserError(f"{path}: not a map of shard names to sample counts; rerun `s2ikit prepare`")
    return sizes


def has_split(data_dir: str | Path, split: str) -> bool:
    """Whether `split` was prepared (its sizes.json exists: finalize writes it once every shard is done)."""
    return (split_folder(data_dir, split) / SIZES).is_file()


def caption_member(index: int, kind: str) -> str:
    """The suffix of caption `index`'s speech ("flac") or log-mel ("npy") member."""
    return f"c{index:02d}.{kind}"


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


@dataclass(frozen=True)
class SpokenCaption:
    index: int  # the caption's position in its record (NN of KEY.cNN.*)
    text: str
    flac: bytes  # 16-bit mono FLAC at the feature rate
    mel: np.ndarray  # (T, n_mels) log-mel of exactly that FLAC
    # Who spoke it, in a data set spoken by several TTS voices ("" otherwise: one voice, named in dataset.json,
    # or a recording): ENGINE:VOICE, and the prosody as spoken
    voice: str = ""
    length_scale: float = 1.0
    pitch: float = 1.0


def caption_metadata(c: SpokenCaption) -> dict[str, Any]:
    meta: dict[str, Any] = {"index": c.index, "text": c.text, "frames": int(c.mel.shape[0])}
    if c.voice:
        meta.update(voice=c.voice, length_scale=c.length_scale, pitch=c.pitch)
    return meta


def sample_metadata(record: Record, captions: list[SpokenCaption], dataset: str) -> dict[str, Any]:
    """KEY.json."""
    return {
        "key": record.key,
        "dataset": dataset,
        "split": record.split,
        "class_id": record.class_id,
        "class_name": record.class_name,
        "attributes": record.attributes,
        "captions": [caption_metadata(c) for c in captions],
    }


class ShardWriter:
    """Writes samples to one open binary file, deterministically: fixed owner and mtime 0, members in sorted
    order, so a shard is a pure function of its samples (byte-identical on resume)."""

    def __init__(self, f: BinaryIO):
        # Not tarfile's stream mode: its buffer object flushes itself when garbage-collected, so a write that
        # failed (a full disk) failed a second time, "write to closed file", after the file was closed.
        self._tar = tarfile.open(fileobj=f, mode="w", format=tarfile.USTAR_FORMAT)

    def write(self, record: Record, dataset: str, image_ext: str, image: bytes, captions: list[SpokenCaption]) -> None:
        """One sample: the record's encoded image and its usable captions (at least one)."""
        if image_ext not in IMAGE_EXTENSIONS or not captions:
            raise ValueError(f"sample {record.key!r}: image type {image_ext!r}, {len(captions)} captions")
        meta = sample_metadata(record, captions, dataset)
        members = {image_ext: image, META: json.dumps(meta, sort_keys=True).encode()}
        for c in captions:
            members[caption_member(c.index, "flac")] = c.flac
            members[caption_member(c.index, "npy")] = npy_bytes(c.mel)
        for suffix in sorted(members):
            info = tarfile.TarInfo(f"{record.key}.{suffix}")  # a Record's key is plain (records.KEY_PATTERN)
            info.size, info.mode, info.uname, info.gname = len(members[suffix]), 0o444, "s2ikit", "s2ikit"
            info.mtime = 0  # an int: a float mtime gets a PAX header per member, which slows every read of the shard
            self._tar.addfile(info, io.BytesIO(members[suffix]))

    def close(self) -> None:
        self._tar.close()


def _parse_member(member: tarfile.TarInfo) -> tuple[str, str] | None:
    """(key, suffix) of a member named KEY.<a suffix of the schema>, else None."""
    key, dot, suffix = member.name.partition(".")
    if not KEY_PATTERN.fullmatch(key) or not dot:
        return None
    if suffix != META and suffix not in IMAGE_EXTENSIONS and not _CAPTION.match(suffix):
        return None
    return key, suffix


def read_shard(path: str | Path) -> Iterator[dict[str, Any]]:
    """Raw samples of one shard: {"__key__", "__url__", suffix: bytes, ...}. Unusable members are skipped and
    counted in one warning; a damaged tar ends the shard early with a warning (the samples before it are kept)."""
    skipped: Counter[str] = Counter()
    first_skipped = ""
    current: dict[str, Any] | None = None

    def skip(name: str, why: str) -> None:
        nonlocal first_skipped
        skipped[why] += 1
        first_skipped = first_skipped or f"{name!r} ({why})"

    try:
        with tarfile.open(path, mode="r|*") as tar:
            for member in tar:
                if not member.isfile():
                    skip(member.name, "not a regular file")
                    continue
                parsed = _parse_member(member)
                if parsed is None:
                    skip(member.name, "not KEY.<schema suffix>")
                    continue
                if member.size > MAX_MEMBER_BYTES:
                    skip(member.name, f"over {MAX_MEMBER_BYTES >> 20} MB")
                    continue
                key, suffix = parsed
                if current is not None and current["__key__"] != key:
                    yield current
                    current = None
                if current is None:
                    current = {"__key__": key, "__url__": str(path)}
                handle = tar.extractfile(member)
                current[suffix] = handle.read() if handle is not None else b""
    except (tarfile.TarError, OSError, EOFError) as e:
        warnings.warn(f"{path}: damaged shard, read up to the damage ({type(e).__name__}: {e})", stacklevel=2)
    if current is not None:
        yield current
    if skipped:
        warnings.warn(
            f"{path}: skipped {sum(skipped.values())} members that are not part of a sample (first: {first_skipped})",
            stacklevel=2,
        )


def decode_members(sample: dict[str, Any]) -> dict[str, Any]:
    """Raw members -> {"key", "image": (H, W, 3) uint8, "meta", "mels": {index: (T, n_mels)}}.

    Raises ValueError naming the shard and the key for a sample that is incomplete or does not decode."""
    key, shard = sample["__key__"], sample.get("__url__", "?")
    try:
        if META not in sample:
            raise ValueError(f"no {key}.{META} member")
        meta = json.loads(sample[META])
        if not isinstance(meta, dict) or meta.get("key") != key or not meta.get("captions"):
            raise ValueError(f"{key}.{META} does not describe sample {key!r} with its captions")
        ext = next((e for e in IMAGE_EXTENSIONS if e in sample), None)
        if ext is None:
            raise ValueError(f"no image member ({' or '.join(f'{key}.{e}' for e in IMAGE_EXTENSIONS[:2])})")
        with Image.open(io.BytesIO(sample[ext])) as im:
            if im.width * im.height > MAX_SAMPLE_PIXELS:
                raise ValueError(f"{key}.{ext} is {im.width}x{im.height} pixels, more than a prepared image")
            image = np.asarray(im.convert("RGB"), dtype=np.uint8)
        mels = {}
        for caption in meta["captions"]:
            name = caption_member(int(caption["index"]), "npy")
            if name not in sample:
                raise ValueError(f"no {key}.{name} member for caption {caption['index']}")
            mel = np.load(io.BytesIO(sample[name]), allow_pickle=False)
            if mel.ndim != 2 or mel.shape[0] == 0:
                raise ValueError(f"{key}.{name} has shape {mel.shape}, not (frames, n_mels)")
            mels[int(caption["index"])] = mel
    except ValueError as e:
        raise ValueError(f"{shard}: sample {key!r}: {e}") from None
    except (OSError, KeyError, TypeError, SyntaxError, Image.DecompressionBombError) as e:
        raise ValueError(f"{shard}: sample {key!r}: {type(e).__name__}: {e}") from None
    return {"key": key, "image": image, "meta": meta, "mels": mels}
