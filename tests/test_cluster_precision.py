"""Precision: `auto` picks fp32 on a CPU (bf16 or fp16 on CUDA); fp16's gradient scaler survives MA-GP's double
backward (the penalty's gradient is taken scaled and unscaled, so it does not underflow) and is resumed exactly.
The fp16 path runs on the CPU (CPU autocast and a CPU GradScaler); the CUDA choice only where there is a GPU."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
from conftest import GAN

from s2ikit.core import checkpoints
from s2ikit.training.gan import train_gan
from s2ikit.training.gan_loss import ma_gp
from s2ikit.training.precision import Precision, resolve


def test_auto_is_fp32_on_a_cpu_and_an_explicit_choice_is_kept():
    cpu = torch.device("cpu")
    assert resolve("auto", cpu) == "fp32" and resolve("fp16", cpu) == "fp16" and resolve("bf16", cpu) == "bf16"
    assert Precision("auto", cpu).scaler is None and Precision("bf16", cpu).scaler is None
    assert Precision("fp16", cpu).scaler is not None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_auto_on_cuda_is_bf16_where_supported_else_fp16():
    gpu = torch.device("cuda")
    assert resolve("auto", gpu) == ("bf16" if torch.cuda.is_bf16_supported() else "fp16")


def test_the_penalty_differentiates_scaled_scores_so_fp16_does_not_underflow():
    torch.manual_seed(0)
    linear = torch.nn.Linear(8, 1, bias=False)
    with torch.no_grad():
        linear.weight.fill_(2e-8)  # a gradient below fp16's smallest number
    images, speech = torch.randn(4, 8, requires_grad=True), torch.randn(4, 3, requires_grad=True)

    def penalty(scale):
        with torch.autocast("cpu", dtype=torch.float16):
            scores = linear(images) + 0 * speech.sum(1, keepdim=True)
            return ma_gp(scores, images, speech, 1.0, 2.0, scale)

    exact = 8 * 2e-8**2  # each sample's gradient is the 8 weights (the speech's is 0): its squared norm
    assert penalty(None).item() == 0.0  # unscaled: the gradient underflows, the penalty vanishes
    assert penalty(2.0**12).item() == pytest.approx(exact, rel=1e-2)
    # in fp32 the scale changes nothing, bit for bit (a power of two)
    scores = linear(images) + 0 * speech.sum(1, keepdim=True)
    assert torch.equal(ma_gp(scores, images, speech, 2.0, 6.0), ma_gp(scores, images, speech, 2.0, 6.0, 2.0**16))


def test_fp16_training_on_a_cpu_resumes_with_its_scaler(reference, encoder_run, tmp_path):
    config = dataclasses.replace(GAN, precision="fp16")
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train_gan(reference, encoder_run, straight, config, max_steps=4, log=lambda s: None)
    train_gan(reference, encoder_run, resumed, config, max_steps=2, log=lambda s: None)
    train_gan(reference, encoder_run, resumed, config, max_steps=4, log=lambda s: None)
    state = checkpoints.load(resumed / checkpoints.GAN_STATE, "gan-state")
    assert state["scaler"]["scale"] > 0
    lines = [json.loads(line) for line in (straight / "metrics.jsonl").read_text().splitlines()]
    losses = [line["d_loss"] for line in lines if "d_loss" in line]  # a step the scaler skipped logs no losses
    assert losses and all(math.isfinite(v) for v in losses)

    def numbers(run):
        return [{k: v for k, v in json.loads(line).items() if k != "seconds"}
                for line in (run / "metrics.jsonl").read_text().splitlines()]  # fmt: skip

    assert numbers(resumed) == numbers(straight)
    other = checkpoints.load(straight / checkpoints.GAN_STATE, "gan-state")
    assert other["scaler"] == state["scaler"]
    assert all(torch.equal(state["G"][k], other["G"][k]) for k in other["G"])


def test_an_overflowed_fp16_step_is_skipped_and_left_out_of_the_logged_means(tmp_path):
    from s2ikit.training.distributed import DistInfo
    from s2ikit.training.engine import Engine, Schedule, Task

    precision = Precision("fp16", torch.device("cpu"))
    weight = torch.nn.Parameter(torch.ones(1))
    optimizer = torch.optim.SGD([weight], lr=0.1)

    class Overflowing(Task):
        kind, state_file = "gan-state", checkpoints.GAN_STATE

        def batches(self, epoch):
            return range(4)

        def train_step(self, batch, step):
            loss = weight.sum() * (math.inf if step == 1 else 1.0)
            optimizer.zero_grad()
            precision.backward(loss)
            precision.step(optimizer)
            return None if precision.update() else {"loss": loss.detach()}

        def state(self):
            return {"w": weight.detach().clone()}

    schedule = Schedule(steps_per_epoch=4, total_steps=4, log_every=2, checkpoint_every=4)
    engine = Engine(tmp_path, DistInfo(0, 1, torch.device("cpu")), schedule, {"toy": {}}, "toy", log=lambda s: None)
    status = engine.run(Overflowing(), engine.resume(Overflowing(), True))
    assert status["reason"] == "schedule"  # the inf did not count as a divergence
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    # the loss is the weight: 1.0, then inf (skipped: left out of the first interval's mean), 0.9, 0.8
    assert [line["loss"] for line in lines] == [1.0, pytest.approx(0.85)]
    assert precision.scaler.get_scale() == 2.0**15  # lowered once
    assert weight.item() == pytest.approx(1 - 3 * 0.1)  # three steps taken, the overflowed one skipped
