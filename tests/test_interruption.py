"""`s2ikit prepare --workers 2` as a user runs it, killed with SIGKILL: no worker outlives it, a resumed run gives
the very bytes of an uninterrupted one and leaves no temporary file, and a full disk in a worker is one line.

Processes are found through /proc (Linux only): a process's parent is field 4 of /proc/PID/stat.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import TINY

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")


def prepare_command(out: Path, cache: Path) -> list[str]:
    """The tiny shapes data set of conftest's `reference` (8 classes x 2 images, 6 units), from the command line."""
    settings = [f"{section}.{key}={value}" for section, values in TINY.items() for key, value in values.items()]
    return [sys.executable, "-m", "s2ikit", "prepare", "shapes", "--out", str(out), "--workers", "2",
            "--cache-dir", str(cache), *(arg for s in settings for arg in ("--set", s))]  # fmt: skip


def environment(**extra: str) -> dict[str, str]:
    path = os.pathsep.join(p for p in (extra.pop("PYTHONPATH", ""), str(REPO), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path, **extra}


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process, None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], int(fields[1])


def descendants(pid: int) -> set[int]:
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            parents[int(entry.name)] = stat[1]
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")  # a zombie has exited; only its entry waits for a reaper


def kill_after(proc: subprocess.Popen, seconds: float) -> tuple[bool, set[int]]:
    """SIGKILL `proc` after `seconds` (if still running); whether it was running, and every descendant seen."""
    seen: set[int] = set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None:
        seen |= descendants(proc.pid)
        time.sleep(0.05)
    running = proc.poll() is None
    if running:
        seen |= descendants(proc.pid)
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    return running, seen


def wait_until_gone(pids: set[int], seconds: float = 10.0) -> set[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.1)
    return {p for p in pids if alive(p)}


def user_outputs(out: Path) -> dict[str, bytes]:
    """What prepare gives a user (the work records hold timings): shards and their sizes, index, failures,
    dataset.json. Other tests add evaluation caches beside the reference's, which are not compared."""
    files = [
        *sorted((out / "shards").rglob("*")),
        *(out / n for n in ("index.jsonl", "failures.jsonl", "dataset.json")),
    ]
    return {str(p.relative_to(out)): p.read_bytes() for p in files if p.is_file()}


def test_workers_die_with_a_killed_prepare(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen(prepare_command(out, tmp_path / "cache"), env=environment(), cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    seen: set[int] = set()
    deadline = time.monotonic() + 120
    # Mid-run: both workers started and at least one unit's speech done (a cold cache makes TTS slow).
    while time.monotonic() < deadline and proc.poll() is None:
        seen |= descendants(proc.pid)
        if len(seen) >= 2 and list((out / "work" / "speech").glob("*.json")):
            break
        time.sleep(0.05)
    running, seen = kill_after(proc, 0.0)
    assert running and not (out / "dataset.json").exists(), "the run ended before it could be killed"
    assert len(seen) >= 2, f"expected two worker processes, saw {sorted(seen)}"
    assert not wait_until_gone(seen), "processes of the killed run are still alive"


def test_a_run_killed_again_and_again_resumes_to_the_same_bytes(reference, tts_cache, tmp_path):
    """Kills at seeded random moments: during start-up, indexing, any step of any unit, or the finalize. The
    uninterrupted run is conftest's `reference`, made in-process; its TTS cache is warm, so each attempt gets
    through several steps before its kill."""
    out, cache, rng = tmp_path / "killed", tts_cache, random.Random(7)
    interrupted = attempt = 0
    while interrupted < 4 and attempt < 20:  # a fast machine finishes between kills: then the kills start over
        proc = subprocess.Popen(prepare_command(out, cache), env=environment(), cwd=REPO,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        running, seen = kill_after(proc, rng.uniform(0.5, 5.0))
        interrupted, attempt = interrupted + running, attempt + 1
        assert not wait_until_gone(seen), f"kill {attempt}: processes of the killed run are still alive"
        if not running and interrupted < 4:
            shutil.rmtree(out)  # it finished: kill a fresh run again
    assert interrupted >= 4, "too few kills landed while the run was going"
    # What a kill in the middle of a write leaves (the files are small, so the kills above seldom hit one).
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True).stdout)
    for path in (out / "shards" / "test" / f".shard-000001.tar.tmp-{dead}", out / f".index.jsonl.tmp-{dead}"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half a file")
    final = subprocess.run(prepare_command(out, cache), env=environment(), cwd=REPO, capture_output=True, text=True,
                           timeout=600)  # fmt: skip
    assert final.returncode == 0, final.stderr[-2000:]
    assert user_outputs(out) == user_outputs(reference)
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name], "temporary files left in the output"


def test_a_full_disk_in_a_worker_is_one_line(tts_cache, tmp_path):
    """Every process of the run (the workers too) imports a sitecustomize that makes writing a shard fail as
    a full disk does."""
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(
        "import errno, tarfile\n"
        "def addfile(self, tarinfo, fileobj=None):\n"
        "    raise OSError(errno.ENOSPC, 'No space left on device')\n"
        "tarfile.TarFile.addfile = addfile\n"
    )
    out = tmp_path / "out"
    result = subprocess.run(prepare_command(out, tts_cache), env=environment(PYTHONPATH=str(hooks)),
                            cwd=REPO, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert f"{out}/shards/" in errors[0] and ".tar: no space left on device (" in errors[0]
    assert errors[0].endswith("); nothing was replaced")
    assert not list((out / "shards").rglob("*.tar")) and not list(out.rglob(".*.tmp-*"))
