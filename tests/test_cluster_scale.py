"""The global batch on any number of processes: the split rule, a 2-process run equal to a 1-process one that
accumulates, and a resume on another world size."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from conftest import torchrun

from s2ikit.core import checkpoints
from s2ikit.training.scale import plan_batches
from s2ikit.utils.errors import UserError

# tiny networks; the per-slot random streams all in use (speech noise, real-image symmetries, translation, mode
# seeking's partner z); LeCam off: its anchors take in each micro-batch in turn (training/scale.py)
SETS = ["gan.image_size=32", "gan.ngf=4", "gan.ndf=4", "gan.batch_size=6", "gan.batch_per_process=3",
        "gan.num_workers=0", "gan.log_every=1", "gan.checkpoint_every=2", "gan.sample_every=100",
        "gan.speech_noise=0.1", "gan.augment_real=dihedral", "gan.augment_translation=0.1",
        "gan.mode_seeking_weight=0.3"]  # fmt: skip


def gan_args(reference, encoder_run, run, steps: int) -> list[str]:
    args = ["-m", "s2ikit", "train-gan", "-d", str(reference), "-e", str(encoder_run), "-r", str(run)]
    args += ["--steps", str(steps)]
    for s in SETS:
        args += ["--set", s]
    return args


def one_process(args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300, env=env)


def losses(run) -> list[dict]:
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in line.items() if k != "seconds"} for line in lines]


def parameters(run) -> dict[str, torch.Tensor]:
    """G's and D's weights (not BatchNorm's running statistics, which each process keeps from its own batches)."""
    state = checkpoints.load(run / checkpoints.GAN_STATE, "gan-state")
    return {f"{net}.{k}": v for net in ("G", "D") for k, v in state[net].items()
            if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))}  # fmt: skip


def test_the_split_rule():
    one = plan_batches("gan", 32, 0, 1, 0)
    assert (one.per_process, one.accumulation, one.slots) == (32, 1, 1)  # a preset on one process, as always
    eight = plan_batches("gan", 32, 0, 8, 3)
    assert (eight.global_batch, eight.per_process, eight.accumulation) == (32, 4, 1)
    assert list(eight.my_slots) == [3]
    accumulating = plan_batches("gan", 32, 8, 1, 0)  # the same global batch on one process, 4 micro-batches
    assert (accumulating.accumulation, accumulating.slots, list(accumulating.my_slots)) == (4, 4, [0, 1, 2, 3])
    assert accumulating.rows(2) == slice(16, 24)
    with pytest.raises(UserError, match=r"gan.batch_size=30 .* does not split over 8 processes"):
        plan_batches("gan", 30, 0, 8, 0)
    with pytest.raises(UserError, match=r"encoder.batch_size=32 .* not a multiple of 2 processes x "
                                        r"encoder.batch_per_process=5.*encoder.batch_size=30"):  # fmt: skip
        plan_batches("encoder", 32, 5, 2, 0)


def test_two_processes_take_the_steps_of_one_that_accumulates(reference, encoder_run, tmp_path):
    single, double, resumed = tmp_path / "one", tmp_path / "two", tmp_path / "two-then-one"
    result = one_process(gan_args(reference, encoder_run, single, 4))
    assert result.returncode == 0, result.stderr[-2000:]
    result = torchrun(gan_args(reference, encoder_run, double, 2), port=29631)
    assert result.returncode == 0, result.stderr[-2000:]
    # slot 0 and slot 1 read the same samples and draw the same numbers on either layout; the two micro-batches'
    # gradients and statistics are summed (a sum of two floats is the same in either order) and halved once
    assert losses(double) == losses(single)[:2]
    scale = json.loads((double / "config.json").read_text())["scale"]
    assert scale == {"world_size": 2, "batch_size": 6, "batch_per_process": 3, "accumulation": 1}
    record = json.loads((double / "run.json").read_text())
    assert record["world_size"] == 2 and record["devices"] == ["cpu", "cpu"] and "train-gan" in record["command"]
    assert record["torch"] == torch.__version__

    # resumed on one process: the global batch and the slots stay, so it goes on exactly as the one-process run
    shutil.copytree(double, resumed)
    result = one_process(gan_args(reference, encoder_run, resumed, 4))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "resuming on 1 process (was 2): the global batch stays gan.batch_size=6" in result.stderr
    assert losses(resumed) == losses(single)
    got, want = parameters(resumed), parameters(single)
    assert all(torch.equal(got[k], want[k]) for k in want)
    resume = json.loads((resumed / "resumes.jsonl").read_text().splitlines()[-1])
    assert [side["world_size"] for side in resume["scale"]] == [2, 1]
    assert [side["accumulation"] for side in resume["scale"]] == [1, 2]
