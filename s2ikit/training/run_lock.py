"""One training at a time per run folder: RUN/.lock.

The lock file holds the PID, host and start time of the process training in RUN. It is created with O_EXCL, so
of two starts only one gets it, and removed when that process ends: normally, by an exception, or by SIGTERM or SIGUSR1,
which are turned into StopRequested (a SystemExit with the PREEMPTED status) while the lock is held so that the
normal exception path runs; the training loop catches them itself and stops at a step boundary. A lock whose
process is gone (on this host) is stale and taken over with a warning; a lock of another host is never guessed
at. Under torchrun only rank 0 holds it (`hold_run`).
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from s2ikit.training.distributed import DistInfo, broadcast_flag
from s2ikit.utils.atomic import pid_alive
from s2ikit.utils.errors import UserError
from s2ikit.utils.stop_signals import StopSignals

LOCK = ".lock"


def _read(path: Path) -> dict[str, Any] | None:
    """The lock's holder; None when there is no lock. A lock being written (empty for an instant) is read again."""
    for _ in range(20):
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None
        try:
            holder = json.loads(text)
        except ValueError:
            time.sleep(0.05)
            continue
        if isinstance(holder, dict) and {"pid", "host", "since"} <= set(holder):
            return holder
        break
    raise UserError(f"{path} is not a lock s2ikit wrote; remove it if no training runs in {path.parent}")


def _in_use(run_dir: Path, holder: dict[str, Any]) -> UserError:
    return UserError(
        f"{run_dir} is in use by PID {holder['pid']} on {holder['host']} since {holder['since']}; stop it or "
        f"remove {run_dir / LOCK} if it is dead"
    )


def _take_over(path: Path, holder: dict[str, Any]) -> bool:
    """Remove the stale lock `holder` read; False when another process replaced it first (it is put back)."""
    aside = path.with_name(f"{LOCK}.stale-{os.getpid()}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return True  # another process removed it: try to create ours
    try:
        if json.loads(aside.read_text()) == holder:
            return True
        try:  # a fresh lock taken between our read and our rename: give it back
            os.link(aside, path)
        except FileExistsError:
            pass
        return False
    finally:
        aside.unlink(missing_ok=True)


def acquire(run_dir: Path, log: Callable[[str], None] = print) -> Path:
    """Create RUN/.lock for this process, or raise the one-line UserError naming the process that holds it."""
    path = run_dir / LOCK
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create the run folder {run_dir}: {e.strerror}") from None
    host = socket.gethostname()
    mine = {"pid": os.getpid(), "host": host, "since": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    for _ in range(5):  # each pass either takes the lock, refuses, or has removed a stale one
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _read(path)
            if holder is None:
                continue  # released between our open and our read
            if holder["host"] != host or holder["pid"] == os.getpid() or pid_alive(int(holder["pid"])):
                raise _in_use(run_dir, holder) from None
            if _take_over(path, holder):
                log(f"WARNING: {run_dir} was locked by PID {holder['pid']} on {host} since {holder['since']}, "
                    "which no longer runs; taking the lock over")  # fmt: skip
            continue
        except OSError as e:
            raise UserError(f"cannot create {path}: {e.strerror}") from None
        try:
            os.write(fd, json.dumps(mine).encode())  # one small write: a reader sees all of it or nothing
            os.fsync(fd)
        except OSError as e:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise UserError(f"cannot write {path}: {e.strerror}") from None
        os.close(fd)
        return path
    raise UserError(f"{path} keeps changing hands; is another training starting in {run_dir}?")


def release(path: Path) -> None:
    """Remove the lock if this process holds it (a forked worker never removes its parent's)."""
    try:
        holder = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return
    if holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
        path.unlink(missing_ok=True)


def _made_by_mkdir(run_dir: Path) -> list[Path]:
    """The folders that creating `run_dir` would make, innermost first."""
    missing, folder = [], run_dir.absolute()
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


@contextmanager
def run_lock(run_dir: Path, log: Callable[[str], None] = print) -> Iterator[Path]:
    """Hold RUN/.lock for the block; SIGTERM ends the block through SystemExit, so the lock is released. Folders
    made for the lock are removed again if the block left nothing in them (a training refused at its start)."""
    made = _made_by_mkdir(run_dir)
    path = acquire(run_dir, log)
    try:
        with StopSignals(raise_now=True):
            yield path
    finally:
        release(path)
        for folder in made:
            try:
                folder.rmdir()
            except OSError:
                break  # not empty: the run has files


@contextmanager
def hold_run(run_dir: Path, info: DistInfo, log: Callable[[str], None] = print) -> Iterator[None]:
    """Rank 0 holds the run's lock for the block; when it cannot, every rank stops with its error."""
    refused: UserError | None = None
    with ExitStack() as stack:
        if info.is_main:
            try:
                stack.enter_context(run_lock(run_dir, log))
            except UserError as e:
                refused = e
        if broadcast_flag(refused is not None, info):
            raise refused or UserError(f"{run_dir}: the main process could not lock the run folder")
        yield
