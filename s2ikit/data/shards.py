"""The shard schema: which tar members make one sample. `prepare` writes shards and the loader reads them only
through this module.

A sample is a run of consecutive members sharing a key (WebDataset's convention: the key is the member name up to
its first dot; keys are plain, see `records.KEY_PATTERN`):

    KEY.png or KEY.jpg   the image at the prepared size
    KEY.json             key, dataset, split, class_id, class_name, attributes and captions, a list of
                         {"index": NN, "text": ..., "frames": T}; in a data set spoken by several TTS voices
                         each caption also names who spoke it and how: "voice" (ENGINE:VOICE, e.g.
                         "espeak-ng:en-us+f3"), "length_scale" (> 1 spoke slower), "pitch" (x the voice's own)
                         and, when moved, "formant_shift" (its formants x this after synthesis); when heard
                         in a room, "room_rt60" (s) and "room_drr_db" (direct-to-reverberant ratio)
    KEY.cNN.flac         caption NN's speech: 16-bit mono FLAC at the feature rate
    KEY.cNN.npy          caption NN's log-mel, (T, n_mels), a plain .npy (never a pickle)

Beside each split's shards, `shards/<split>/sizes.json` maps each shard's file name to its sample count (open_clip's
convention): `prepare` writes it with `write_sizes` when it finalizes, the loader reads it with `read_sizes`, and
`has_split` says whether a prepared split exists.

Shards need not sit beside sizes.json: `shards/<split>/url-template.txt`, when present, holds one line naming where
each shard of sizes.json is read from, `{name}` standing for its file name (`pipe:aws s3 cp s3://bucket/train/{name}
-`, `https://host/train/{name}`, `file:/scratch/train/{name}`). `shard_locations` gives each shard's location,
`read_shard` opens a URL through webdataset's `gopen` (`pipe:` runs the command in a shell and reads its output;
`file:`, `http(s):`, `gs:` ...), or through fsspec for the schemes gopen has no handler for (`s3://` with s3fs).

A shard is untrusted input. The reader skips members that are not regular files, whose name is not a plain key
followed by a suffix of the schema (a path such as `../x` or `/etc/x`, a key with `/`, `KEY.gif`) or that are
larger than any sample member can be, with one warning per shard naming it; nothing from a shard is written to
disk or unpickled, and images larger than `MAX_SAMPLE_PIXELS` are refused before they are decoded. A shard read
from a URL is read as a stream, member by member, under the same rules.
"""

from __future__ import annotations

import io
import json
import os
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
from webdataset.gopen import gopen, gopen_schemes

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
URL_TEMPLATE = "url-template.txt"  # in shards/<split>/, optional: where the shards are read from
ALLOW_PIPE = "S2IKIT_ALLOW_PIPE"  # =1: the user has read url-template.txt and lets its pipe: command run
# A URL starts with a scheme of two letters or more (pipe:, file:, s3://, https://); a one-letter one is a
# Windows drive (C:\...), a local path.
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]+:")
# sizes.json names a shard by its file name. The name is put into url-template.txt's line, which `pipe:` hands
# to a shell: only plain names may be, so a tampered sizes.json cannot add words to the command.
_SHARD_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")
MAX_URL_CHARS = 4096


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


def is_url(location: str | Path) -> bool:
    """Whether a shard location is a URL (pipe:, file:, s3://, ...) rather than a local path."""
    return isinstance(location, str) and bool(_URL.match(location))


def read_url_template(data_dir: str | Path, split: str) -> str | None:
    """`split`'s url-template.txt: its one line (comments start with #), or None when there is no such file."""
    path = split_folder(data_dir, split) / URL_TEMPLATE
    if not path.is_file():
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: unreadable ({e})") from None
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if len(lines) != 1:
        raise UserError(f"{path}: expected one line naming each shard's location with {{name}}, found {len(lines)}")
    (template,) = lines
    # A data folder is input like any other: a command written into it runs only when its user says so.
    if template.lower().startswith("pipe:") and os.environ.get(ALLOW_PIPE) != "1":
        raise UserError(
            f"{path}: names shards through a shell command ({template[:80]!r}); read it, then set {ALLOW_PIPE}=1 to "
            "run it"
        )
    if "{name}" not in template or len(template) > MAX_URL_CHARS:
        raise UserError(
            f"{path}: the line must hold {{name}} (the shard's file name) and be at most {MAX_URL_CHARS} characters"
        )
    return template


def shard_locations(data_dir: str | Path, split: str, names: list[str]) -> list[str]:
    """Where each named shard of `split` is read: beside sizes.json, or where url-template.txt says."""
    folder, template = split_folder(data_dir, split), read_url_template(data_dir, split)
    bad = next((n for n in names if not _SHARD_NAME.fullmatch(n)), None)
    if bad is not None:
        raise UserError(f"{folder / SIZES}: {bad!r} is not a shard file name (letters, digits, '_', '.', '-')")
    if template is None:
        return [str(folder / name) for name in names]
    return [template.replace("{name}", name) for name in names]


def open_shard(location: str | Path) -> BinaryIO:
    """A shard's bytes as a stream: a local path as a file, a URL through gopen (or fsspec for schemes gopen has
    no handler for). A URL no handler reads is one line naming it."""
    if not is_url(location):
        return open(location, "rb")
    scheme = str(location).split(":", 1)[0].lower()
    if scheme == "file" or scheme in gopen_schemes:
        return gopen(str(location), "rb")
    try:
        import fsspec

        return fsspec.open(str(location), "rb").open()
    except (ImportError, ValueError) as e:  # fsspec missing, or its package for the scheme (s3fs for s3://)
        raise UserError(
            f"{location}: cannot open {scheme}: URLs ({e}); install fsspec and its {scheme} package, or name the "
            "shard as 'pipe:COMMAND' with a command that writes it to its output"
        ) from None


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
    formant_shift: float = 1.0  # formants x this after synthesis (tts.formant_shifts); recorded when not 1
    room_rt60: float = 0.0  # heard in a room of this RT60 (s) and DRR (dB) (tts.rooms); recorded when not dry
    room_drr_db: float = 0.0


def caption_metadata(c: SpokenCaption) -> dict[str, Any]:
    meta: dict[str, Any] = {"index": c.index, "text": c.text, "frames": int(c.mel.shape[0])}
    if c.voice:
        meta.update(voice=c.voice, length_scale=c.length_scale, pitch=c.pitch)
        if c.formant_shift != 1.0:
            meta["formant_shift"] = c.formant_shift
        if c.room_rt60 != 0.0:
            meta["room_rt60"], meta["room_drr_db"] = c.room_rt60, c.room_drr_db
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
    """Raw samples of one shard, a local path or a URL (`open_shard`): {"__key__", "__url__", suffix: bytes, ...}.
    Unusable members are skipped and counted in one warning; a damaged tar, or a stream that breaks off (a
    `pipe:` command that fails), ends the shard early with a warning (the samples before it are kept)."""
    skipped: Counter[str] = Counter()
    first_skipped = ""
    current: dict[str, Any] | None = None

    def skip(name: str, why: str) -> None:
        nonlocal first_skipped
        skipped[why] += 1
        first_skipped = first_skipped or f"{name!r} ({why})"

    try:
        with open_shard(path) as stream, tarfile.open(fileobj=stream, mode="r|*") as tar:
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
