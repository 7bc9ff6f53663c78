"""Cluster jobs: SIGTERM stops a training at the next step boundary with a checkpoint and `prepare` at once with
its finished units kept, both with the documented exit code and no process left behind; the rerun finishes the
job as if nothing had happened. Also: the exit codes of other outcomes, and srun without torchrun."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import TINY, output_files
from typer.testing import CliRunner

from s2ikit.cli import app
from s2ikit.core import checkpoints
from s2ikit.training.distributed import check_launcher
from s2ikit.utils import exit_codes
from s2ikit.utils.errors import UserError

TINY_GAN = ["gan.image_size=32", "gan.ngf=4", "gan.ndf=4", "gan.batch_size=3", "gan.log_every=1",
            "gan.checkpoint_every=1000", "gan.sample_every=1000", "gan.speech_noise=0.1"]  # fmt: skip


def env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "S2IKIT_OFFLINE": "1"}


def descendants(pid: int) -> set[int]:
    """The processes below `pid` (from /proc)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_for(condition, process: subprocess.Popen, seconds: float = 180) -> set[int]:
    """Wait for `condition` while `process` runs; returns the processes it has started by then."""
    started, seen = time.monotonic(), set()
    while not condition():
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.monotonic() - started < seconds, "timed out"
        seen |= descendants(process.pid)
        time.sleep(0.02)
    return seen | descendants(process.pid)


def gone(pids: set[int], seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not any(alive(p) for p in pids)


def train_gan_args(reference, encoder_run, run, steps: int, workers: int) -> list[str]:
    args = [sys.executable, "-m", "s2ikit", "train-gan", "-d", str(reference), "-e", str(encoder_run), "-r", str(run),
            "--steps", str(steps), "--set", f"gan.num_workers={workers}"]  # fmt: skip
    for setting in TINY_GAN:
        args += ["--set", setting]
    return args


def lines(run: Path) -> list[dict]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "seconds"} for r in records]


def test_sigterm_checkpoints_a_training_at_the_next_step_and_the_rerun_goes_on_exactly(reference, encoder_run,
                                                                                       tmp_path):  # fmt: skip
    run, straight = tmp_path / "interrupted", tmp_path / "straight"
    # one DataLoader worker: a process that must not outlive the training
    training = subprocess.Popen(train_gan_args(reference, encoder_run, run, 500, 1), env=env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        metrics = run / "metrics.jsonl"
        children = wait_for(lambda: metrics.is_file() and len(metrics.read_text().splitlines()) >= 3, training)
        training.send_signal(signal.SIGTERM)
        _, stderr = training.communicate(timeout=120)
    finally:
        if training.poll() is None:
            training.kill()
    assert training.returncode == exit_codes.PREEMPTED == 75, stderr[-2000:]
    assert children and gone(children)  # the DataLoader worker went with it
    status = json.loads((run / "status.json").read_text())
    assert status["reason"] == "preempted" and status["signal"] == "SIGTERM" and status["exit_code"] == 75
    stopped = status["step"]
    assert "Traceback" not in stderr
    assert f"stopped by SIGTERM at step {stopped} of 500" in " ".join(stderr.split())
    state = checkpoints.load(run / checkpoints.GAN_STATE, "gan-state")
    assert state["step"] == stopped == lines(run)[-1]["step"]  # checkpointed at the step it had reached
    assert not (run / ".lock").exists()

    total = stopped + 2
    resumed = subprocess.run(train_gan_args(reference, encoder_run, run, total, 1), env=env(), capture_output=True,
                             text=True, timeout=300)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"at step {stopped}" in resumed.stderr
    uninterrupted = subprocess.run(train_gan_args(reference, encoder_run, straight, total, 1), env=env(),
                                   capture_output=True, text=True, timeout=300)  # fmt: skip
    assert uninterrupted.returncode == 0, uninterrupted.stderr[-2000:]
    assert lines(run) == lines(straight)
    a = checkpoints.load(run / checkpoints.GAN_STATE, "gan-state")
    b = checkpoints.load(straight / checkpoints.GAN_STATE, "gan-state")
    for net in ("G", "D", "G_ema"):
        assert all(torch.equal(a[net][k], b[net][k]) for k in b[net]), net


def prepare_args(out: Path, cache: Path) -> list[str]:
    sizes = {**TINY["shapes"], "images_per_class": 6}  # 16 units of 3 images: the signal lands among them
    sets = {**{f"shapes.{k}": v for k, v in sizes.items()}, "prepare.shard_size": 3, "prepare.image_size": 32,
            "tts.length_scales": "1.0"}  # fmt: skip
    args = [sys.executable, "-m", "s2ikit", "prepare", "shapes", "--out", str(out), "--cache-dir", str(cache),
            "--workers", "2"]  # fmt: skip
    for key, value in sets.items():
        args += ["--set", f"{key}={value}"]
    return args


def test_sigterm_stops_prepare_keeping_its_finished_units_and_the_rerun_completes(reference, tts_cache, tmp_path):
    out, straight = tmp_path / "interrupted", tmp_path / "straight"
    records = out / "work" / "shards"
    job = subprocess.Popen(prepare_args(out, tts_cache), env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)  # fmt: skip
    try:
        workers = wait_for(lambda: records.is_dir() and any(records.glob("*.json")), job)
        job.send_signal(signal.SIGTERM)
        _, stderr = job.communicate(timeout=120)
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode == exit_codes.PREEMPTED, stderr[-2000:]
    assert "Traceback" not in stderr and "stopped: by SIGTERM" in stderr
    assert len(workers) >= 2 and gone(workers)  # the pool's workers did not outlive it
    kept = {p.name: p.read_bytes() for p in records.glob("*.json")}
    assert 1 <= len(kept) < 16 and not (out / "dataset.json").exists()

    rerun = subprocess.run(prepare_args(out, tts_cache), env=env(), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert all((records / name).read_bytes() == data for name, data in kept.items())  # not redone
    whole = subprocess.run(prepare_args(straight, tts_cache), env=env(), capture_output=True, text=True, timeout=300)
    assert whole.returncode == 0, whole.stderr[-2000:]
    assert output_files(out) == output_files(straight)


def test_a_diverged_training_exits_3_and_bad_input_2(reference, encoder_run, tmp_path):
    args = ["train-gan", "-d", str(reference), "-e", str(encoder_run), "-r", str(tmp_path / "run"), "--steps", "2",
            "--set", "gan.num_workers=0", "--set", "gan.divergence_threshold=1e-9"]  # fmt: skip
    for setting in TINY_GAN:
        args += ["--set", setting]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == exit_codes.DIVERGED == 3, result.output
    assert "training diverged" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(app, [*args, "--set", "gan.batch_per_process=2"])  # 3 is not a multiple of 2
    assert result.exit_code == exit_codes.BAD_INPUT == 2 and "gan.batch_per_process=2" in result.output


def test_a_time_budget_stop_exits_76(reference, encoder_run, tmp_path):
    args = ["train-gan", "-d", str(reference), "-e", str(encoder_run), "-r", str(tmp_path / "run"), "--steps", "50",
            "--minutes", "0.000001", "--set", "gan.num_workers=0"]  # fmt: skip
    for setting in TINY_GAN:
        args += ["--set", setting]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == exit_codes.TIME_BUDGET == 76, result.output
    assert json.loads((tmp_path / "run/status.json").read_text())["exit_code"] == 76


def test_srun_without_torchrun_is_refused_in_one_line():
    check_launcher({"SLURM_NTASKS": "1", "SLURM_PROCID": "0"})  # one task: a plain single-process run
    check_launcher({"SLURM_NTASKS": "8", "SLURM_PROCID": "3", "RANK": "3", "WORLD_SIZE": "8"})  # torchrun under srun
    check_launcher({"SLURM_NTASKS": "8", "SLURM_STEP_NUM_TASKS": "1", "SLURM_PROCID": "0"})  # srun -n 1 in a job
    with pytest.raises(UserError, match=r"one of 4 Slurm tasks without torchrun.*docs/cluster.md") as refused:
        check_launcher({"SLURM_NTASKS": "4", "SLURM_PROCID": "1"})
    assert "\n" not in str(refused.value)


class Signalling:
    """A toy task that sends itself SIGUSR1 during step 3 (0-based 2)."""

    kind, state_file, model_settings = "gan-state", checkpoints.GAN_STATE, ()

    def __init__(self):
        self.steps = []

    def before_first_step(self, step):
        pass

    def begin_epoch(self, epoch):
        pass

    def batches(self, epoch):
        return range(10)

    def train_step(self, batch, step):
        self.steps.append(step)
        if step == 2:
            os.kill(os.getpid(), signal.SIGUSR1)
        return {"loss": torch.tensor(float(step))}

    def after_step(self, step):
        pass

    def end_epoch(self, epoch, last, seconds):
        return {}

    def record(self, step, epoch, means, extra):
        return {"step": step, **means}

    def format(self, record):
        return str(record)

    def snapshot(self, step, grid):
        pass

    def on_checkpoint(self, step, stopped):
        pass

    def state(self):
        return {}

    def load_state(self, state):
        pass

    def resume_step(self, state, steps_per_epoch):
        return int(state["step"])


@pytest.mark.parametrize("mid_epoch", [True, False])
def test_sigusr1_stops_at_the_step_boundary_or_at_the_last_epoch_checkpoint(tmp_path, mid_epoch):
    from s2ikit.training.distributed import DistInfo
    from s2ikit.training.engine import Engine, Preempted, Schedule

    schedule = Schedule(steps_per_epoch=10, total_steps=20, log_every=1, checkpoint_every=10,
                        resumable_mid_epoch=mid_epoch)  # fmt: skip
    engine = Engine(tmp_path, DistInfo(0, 1, torch.device("cpu")), schedule, {"toy": {}}, "toy", log=lambda s: None)
    task = Signalling()
    previous = signal.getsignal(signal.SIGUSR1)
    with pytest.raises(Preempted, match="stopped by SIGUSR1 at step") as stopped:
        engine.run(task, engine.resume(task, True))
    assert stopped.value.exit_code == 75
    assert signal.getsignal(signal.SIGUSR1) == previous  # the handler is the caller's again
    status = json.loads((tmp_path / "status.json").read_text())
    assert task.steps == [0, 1, 2]  # no step after the signal's
    if mid_epoch:  # checkpointed where it stopped
        assert status["step"] == 3 and (tmp_path / checkpoints.GAN_STATE).is_file()
    else:  # a task that resumes only at an epoch's start stops at once; the epoch is trained again
        assert status["step"] == 0 and not (tmp_path / checkpoints.GAN_STATE).exists()
    assert status["reason"] == "preempted" and status["exit_code"] == 75
