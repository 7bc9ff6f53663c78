"""One training per run folder: a second start is one line and writes nothing; the lock goes with its process,
also on SIGTERM; a dead process's lock is taken over with a warning."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from conftest import GAN
from typer.testing import CliRunner

from s2ikit.cli import app
from s2ikit.training.gan import train_gan
from s2ikit.training.run_lock import LOCK, acquire, release, run_lock
from s2ikit.utils.errors import UserError

HOLD = """
import sys, time
from pathlib import Path
from s2ikit.training.run_lock import run_lock
with run_lock(Path(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(120)
"""


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "S2IKIT_OFFLINE": "1"}


def _wait_for(condition, process, seconds=120):
    started = time.monotonic()
    while not condition():
        assert process.poll() is None, process.stderr.read() if process.stderr else process.returncode
        assert time.monotonic() - started < seconds
        time.sleep(0.05)


def _files(folder):
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_second_training_on_a_locked_run_is_one_line_and_writes_nothing(reference, encoder_run, tmp_path):
    run = tmp_path / "run"
    train_gan(reference, encoder_run, run, GAN, max_steps=2, log=lambda s: None)
    assert not (run / LOCK).exists()  # released when the training returned
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], env=_env(), stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = _files(run)
        with pytest.raises(UserError) as refused:
            train_gan(reference, encoder_run, run, GAN, max_steps=4, log=lambda s: None)
        message = str(refused.value)
        assert "\n" not in message
        assert message.startswith(f"{run} is in use by PID {holder.pid} on {socket.gethostname()} since ")
        assert message.endswith(f"; stop it or remove {run / LOCK} if it is dead")
        assert _files(run) == before  # nothing written, the holder's lock untouched
        assert json.loads((run / LOCK).read_text())["pid"] == holder.pid
    finally:
        holder.send_signal(signal.SIGTERM)
        holder.wait(timeout=60)
    assert holder.returncode == 75  # SIGTERM took the normal exception path (exit_codes.PREEMPTED)...
    assert not (run / LOCK).exists()  # ...which released the lock
    logs = []
    train_gan(reference, encoder_run, run, GAN, max_steps=4, log=logs.append)  # the run is free again
    assert any("resuming" in line and "step 2" in line for line in logs)


def test_a_training_killed_with_sigterm_releases_its_run(reference, encoder_run, tmp_path):
    run = tmp_path / "run"
    args = [sys.executable, "-m", "s2ikit", "train-gan", "-d", str(reference), "-e", str(encoder_run), "-r", str(run),
            "--steps", "100000"]  # fmt: skip
    for setting in ("gan.image_size=32", "gan.ngf=4", "gan.ndf=4", "gan.batch_size=3", "gan.num_workers=0",
                    "gan.log_every=1", "gan.sample_every=1000"):  # fmt: skip
        args += ["--set", setting]
    training = subprocess.Popen(args, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: (run / "metrics.jsonl").is_file() and (run / "metrics.jsonl").stat().st_size > 0, training)
        assert json.loads((run / LOCK).read_text())["pid"] == training.pid
        second = CliRunner().invoke(app, [*args[3:]])
        assert second.exit_code == 2 and "Traceback" not in second.output
        assert f"is in use by PID {training.pid}" in " ".join(second.output.split())
    finally:
        training.send_signal(signal.SIGTERM)
        training.wait(timeout=120)
    assert training.returncode != 0
    assert not (run / LOCK).exists()


def test_a_dead_process_lock_is_taken_over_with_a_warning(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    run = tmp_path / "run"
    run.mkdir()
    (run / LOCK).write_text(json.dumps({"pid": gone.pid, "host": socket.gethostname(), "since": "then"}))
    logs = []
    with run_lock(run, logs.append):
        assert json.loads((run / LOCK).read_text())["pid"] == os.getpid()
    assert (
        len(logs) == 1 and "WARNING" in logs[0] and f"PID {gone.pid}" in logs[0] and "taking the lock over" in logs[0]
    )
    assert not (run / LOCK).exists()


def test_a_lock_of_another_host_is_never_taken_over(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    other = {"pid": 1, "host": socket.gethostname() + "-elsewhere", "since": "2026-01-01T00:00:00+00:00"}
    (run / LOCK).write_text(json.dumps(other))
    with pytest.raises(UserError, match=f"in use by PID 1 on {other['host']} since 2026-01-01"):
        acquire(run)
    assert json.loads((run / LOCK).read_text()) == other
    release(run / LOCK)  # not ours: kept
    assert (run / LOCK).exists()


def test_a_training_refused_at_its_start_leaves_no_run_folder(reference, tmp_path):
    run = tmp_path / "runs" / "gan"
    with pytest.raises(UserError):
        train_gan(reference, tmp_path / "no-encoder", run, GAN, max_steps=1, log=lambda s: None)
    assert not (tmp_path / "runs").exists()  # the folders made for the lock are gone again
