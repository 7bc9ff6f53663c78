"""Atomic file output: write to a temporary name in the same folder, then rename.

A reader (or a resumed run) therefore sees either the old file or the complete new one, never a torn one.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# Indirection so tests can inject a crash exactly at the moment a file would become visible.
_replace = os.replace


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is renamed to `path`, on failure removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        _replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_bytes(path: str | os.PathLike, data: bytes, *, only_if_changed: bool = False, durable: bool = True) -> None:
    """Write `data` atomically; with `only_if_changed`, an identical existing file is left untouched.

    `durable` also survives a power cut (fsync before the rename); a killed process is safe either way.
    """
    if only_if_changed and Path(path).is_file() and Path(path).read_bytes() == data:
        return
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no spaces: equal objects give equal strings (and equal hashes)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def write_json(path: str | os.PathLike, obj: Any, *, only_if_changed: bool = False) -> None:
    text = json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    write_bytes(path, text.encode(), only_if_changed=only_if_changed)


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def fingerprint(obj: Any) -> str:
    """sha256 of an object's canonical JSON."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
