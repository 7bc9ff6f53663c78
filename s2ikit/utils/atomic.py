"""Atomic file output: write to a temporary name in the same folder, then rename.

A reader (or a resumed run) therefore sees either the old file or the complete new one, never a torn one.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from s2ikit.utils.errors import UserError

# Indirection so tests can inject a crash exactly at the moment a file would become visible.
_replace = os.replace

_TEMP = ".{name}.tmp-{pid}"  # beside the final file, so the rename stays on one file system
_STALE = re.compile(r"^\..+\.tmp-(\d+)$")
_FULL = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded"}
# torch.save reports a failed write as a RuntimeError without errno ("unexpected pos 704 vs 598" when the disk
# filled, "file write failed"); with less than this much free space left it is a full disk.
_TORCH_WRITE_FAILED = ("unexpected pos", "write failed")
_NEARLY_FULL = 64 << 20


def temp_path(path: str | os.PathLike) -> Path:
    """The temporary name `atomic_path` writes `path` under in this process."""
    path = Path(path)
    return path.with_name(_TEMP.format(name=path.name, pid=os.getpid()))


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is renamed to `path`, on failure removed.

    A full disk (or quota) while writing is a one-line UserError naming `path` and the free space; the old
    file, if any, is left as it was."""
    path = Path(path)
    tmp = temp_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        _replace(tmp, path)
    except OSError as e:
        if e.errno in _FULL:
            _discard(tmp)  # first, so the free space reported is what the user has
            raise UserError(_full_message(path, _FULL[e.errno])) from None
        raise
    except RuntimeError as e:  # torch.save's C++ writer
        if any(sign in str(e) for sign in _TORCH_WRITE_FAILED) and _free_bytes(path.parent) < _NEARLY_FULL:
            _discard(tmp)
            raise UserError(_full_message(path, "no space left on device")) from None
        raise
    finally:
        _discard(tmp)


def _discard(tmp: Path) -> None:
    try:
        tmp.unlink(missing_ok=True)
    except OSError:
        pass  # never hide the error that brought us here


def _remove_stale(candidates, keep_live: bool) -> list[Path]:
    removed = []
    for path in candidates:
        match = _STALE.match(path.name)
        if match and path.is_file() and not (keep_live and pid_alive(int(match.group(1)))):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def remove_stale_temps(folder: str | os.PathLike, *, keep_live: bool = True) -> int:
    """Delete the temporary files under `folder` that killed processes left; returns how many. With
    `keep_live`, those whose process still runs here (another `prepare` writing beside this one) are kept."""
    return len(_remove_stale(Path(folder).rglob(".*.tmp-*"), keep_live))


def remove_stale_temps_of(dest: str | os.PathLike) -> list[Path]:
    """The temporary files of one destination (`.NAME.tmp-PID`) whose process is gone, removed: what a writer
    killed outright left. Those of running processes (another writer of the same file) are kept."""
    dest = Path(dest)
    return _remove_stale(dest.parent.glob(f".{dest.name}.tmp-*") if dest.parent.is_dir() else (), keep_live=True)


def pid_alive(pid: int) -> bool:
    """Whether process `pid` runs on this host (this process counts; another user's process too)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def _free_bytes(folder: Path) -> int:
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return 0


def _full_message(path: Path, reason: str) -> str:
    return f"{path}: {reason} ({_human(_free_bytes(path.parent))} free on {_device(path.parent)}); nothing was replaced"


def _human(n: int) -> str:
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}" if n < 10 * size else f"{n // size} {unit}"
    return f"{n} bytes"


def _device(folder: Path) -> str:
    """The file system holding `folder`: its device from /proc/self/mounts where readable, else its mount point."""
    folder = folder.resolve()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    mount = folder
    while not os.path.ismount(mount) and mount != mount.parent:
        mount = mount.parent
    try:
        with open("/proc/self/mounts", encoding="utf-8", errors="replace") as f:
            devices = [line.split()[0] for line in f if len(line.split()) > 1 and line.split()[1] == str(mount)]
    except OSError:
        devices = []
    return f"{devices[-1]} ({mount})" if devices else str(mount)


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
