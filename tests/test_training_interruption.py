"""train-gan killed with SIGKILL at random moments, then resumed, ends exactly where an uninterrupted run does:
the same losses line for line (none duplicated), the same weights, no temporary file left, no process alive."""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import torch

from s2ikit.core import checkpoints

SETTINGS = ["gan.image_size=32", "gan.ngf=4", "gan.ndf=4", "gan.batch_size=3", "gan.num_workers=0",
            "gan.log_every=1", "gan.checkpoint_every=3", "gan.sample_every=100"]  # fmt: skip


def _command(reference, encoder_run, run, steps):
    args = [sys.executable, "-m", "s2ikit", "train-gan", "-d", str(reference), "-e", str(encoder_run), "-r", str(run)]
    args += ["--steps", str(steps)]
    for setting in SETTINGS:
        args += ["--set", setting]
    return args


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "S2IKIT_OFFLINE": "1"}


def _metrics(run):
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in record.items() if k != "seconds"} for record in lines]


def _logged(run) -> bool:
    path = run / "metrics.jsonl"
    return path.is_file() and path.stat().st_size > 0


def test_killed_and_resumed_train_gan_equals_an_uninterrupted_run(reference, encoder_run, tmp_path):
    steps = 12
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    done = subprocess.run(_command(reference, encoder_run, straight, steps), env=_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    rng, kills, attempts = random.Random(0), 0, 0
    while kills < 3 and attempts < 12:  # a fast machine may finish between kills: then the kills start over
        attempts += 1
        process = subprocess.Popen(_command(reference, encoder_run, killed, steps), env=_env(),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
        started = time.monotonic()  # wait for training to begin, then kill at a random moment of it
        while process.poll() is None and not _logged(killed) and time.monotonic() - started < 120:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 0.8))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        elif kills < 3:
            shutil.rmtree(killed)  # it finished before the kill: kill a fresh run again
        process.wait(timeout=60)
        assert process.poll() is not None  # the killed run is gone (and had no worker processes to leave behind)
    assert kills >= 3
    final = subprocess.run(_command(reference, encoder_run, killed, steps), env=_env(), capture_output=True, text=True)
    assert final.returncode == 0, final.stderr[-2000:]
    assert _metrics(killed) == _metrics(straight)  # every step once, every loss equal
    for name, kind in (("gan-state.pt", "gan-state"), ("generator.pt", "generator")):
        a, b = (checkpoints.load(run / "checkpoints" / name, kind) for run in (straight, killed))
        for key in ("G", "D", "G_ema", "generator"):
            if key in a:
                assert all(torch.equal(a[key][k], b[key][k]) for k in a[key]), (name, key)
    assert not list(killed.rglob(".*.tmp-*"))
