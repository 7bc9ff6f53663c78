"""A resume applies the settings it records: changed learning rates, betas, weight decay and schedules reach the
restored optimisers; another data folder is refused unless --allow-new-data, and then recorded."""

import dataclasses
import json
import shutil

import pytest
import torch
from conftest import GAN
from typer.testing import CliRunner

from s2ikit.cli import app
from s2ikit.config import EncoderConfig
from s2ikit.core import checkpoints
from s2ikit.training.encoder import train_encoder
from s2ikit.training.gan import train_gan

TINY_ENCODER = EncoderConfig(
    embed_dim=16, attention_hidden=8, conv_channels=(8, 8), rnn_layers=1, image_encoder="cnn", cnn_width=4,
    batch_size=3, epochs=1, eval_every=1, val_fraction=0.25, num_workers=0, lr_step_epochs=1, lr_gamma=0.1,
)  # fmt: skip


def quiet(line: str) -> None:
    pass


def records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_resumed_gan_steps_with_the_new_learning_rates(reference, encoder_run, tmp_path):
    first, same, faster = tmp_path / "first", tmp_path / "same", tmp_path / "faster"
    train_gan(reference, encoder_run, first, GAN, max_steps=2, log=quiet)  # checkpoint at step 2
    shutil.copytree(first, same), shutil.copytree(first, faster)
    train_gan(reference, encoder_run, same, GAN, max_steps=3, log=quiet)
    new = dataclasses.replace(GAN, lr_g=GAN.lr_g * 10, lr_d=GAN.lr_d * 10)
    train_gan(reference, encoder_run, faster, new, max_steps=3, log=quiet)
    at2, a, b = (checkpoints.load(run / "checkpoints/gan-state.pt", "gan-state") for run in (first, same, faster))
    assert [g["lr"] for g in b["opt_g"]["param_groups"]] == [new.lr_g]
    assert [g["lr"] for g in b["opt_d"]["param_groups"]] == [new.lr_d]
    assert [g["lr"] for g in a["opt_d"]["param_groups"]] == [GAN.lr_d]
    # step 3's D update starts from the same weights, gradient and Adam moments in both runs: at 10x the rate,
    # each weight moves 10x as far
    for k, before in at2["D"].items():
        if before.is_floating_point():
            torch.testing.assert_close(b["D"][k] - before, 10 * (a["D"][k] - before), rtol=1e-3, atol=1e-6)
    assert any(not torch.equal(a["D"][k], at2["D"][k]) for k in at2["D"])
    assert records(faster / "resumes.jsonl")[-1]["changed"]["lr_d"] == [GAN.lr_d, new.lr_d]
    assert json.loads((faster / "config.json").read_text())["gan"]["lr_d"] == new.lr_d


def test_a_resumed_encoder_trains_with_the_new_rate_betas_decay_and_schedule(reference, tmp_path):
    first = tmp_path / "first"
    train_encoder(reference, first, TINY_ENCODER, log=quiet)
    runs = {name: tmp_path / name for name in ("same", "changed", "slower_decay")}
    for run in runs.values():
        shutil.copytree(first, run)
    two = dataclasses.replace(TINY_ENCODER, epochs=2)
    train_encoder(reference, runs["same"], two, log=quiet)
    changed = dataclasses.replace(two, lr=1e-2, betas=(0.9, 0.99), weight_decay=0.0)
    train_encoder(reference, runs["changed"], changed, log=quiet)
    train_encoder(reference, runs["slower_decay"], dataclasses.replace(two, lr_step_epochs=2), log=quiet)
    epoch2 = {name: records(run / "metrics.jsonl")[-1] for name, run in runs.items()}
    assert epoch2["same"]["lr"] == pytest.approx(1e-4)  # 1e-3, then x0.1 after epoch 1
    assert epoch2["changed"]["lr"] == pytest.approx(1e-3)  # the new 1e-2, decayed once as the schedule says
    assert epoch2["slower_decay"]["lr"] == pytest.approx(1e-3)  # no decay before epoch 2 any more
    state = checkpoints.load(runs["changed"] / "checkpoints/encoder-state.pt", "encoder-state")
    (group,) = state["optimizer"]["param_groups"]
    assert tuple(group["betas"]) == (0.9, 0.99) and group["weight_decay"] == 0.0
    assert group["initial_lr"] == 1e-2 and group["lr"] == pytest.approx(1e-4)
    assert state["scheduler"]["base_lrs"] == [1e-2]
    assert records(runs["changed"] / "resumes.jsonl")[-1]["changed"]["lr"] == [1e-3, 1e-2]


def test_another_data_folder_is_refused_unless_allowed_and_then_recorded(reference, encoder_run, tmp_path):
    run, copy = tmp_path / "run", tmp_path / "data-copy"
    shutil.copytree(reference, copy)
    args = ["train-gan", "-e", str(encoder_run), "-r", str(run)]
    for setting in ("gan.image_size=32", "gan.ngf=4", "gan.ndf=4", "gan.batch_size=3", "gan.num_workers=0"):
        args += ["--set", setting]
    runner = CliRunner()
    done = runner.invoke(app, [*args, "-d", str(reference), "--steps", "2"])
    assert done.exit_code == 0, done.output
    before = {p: p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}
    refused = runner.invoke(app, [*args, "-d", str(copy), "--steps", "3"])
    assert refused.exit_code == 2 and "Traceback" not in refused.output
    message = " ".join(refused.output.split())  # the console may wrap the line
    assert f"--data {reference}, now --data {copy}" in message and "--allow-new-data" in message
    assert {p: p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()} == before  # nothing written
    allowed = runner.invoke(app, [*args, "-d", str(copy), "--steps", "3", "--allow-new-data"])
    assert allowed.exit_code == 0, allowed.output
    last = records(run / "resumes.jsonl")[-1]
    assert last["step"] == 2 and last["data"] == [str(reference), str(copy)]
    assert json.loads((run / "config.json").read_text())["data"] == str(copy)
    assert [r["step"] for r in records(run / "metrics.jsonl")][-1] == 3


def test_the_encoder_refuses_another_data_folder_too(reference, tmp_path):
    from s2ikit.utils.errors import UserError

    run, copy = tmp_path / "run", tmp_path / "data-copy"
    train_encoder(reference, run, TINY_ENCODER, log=quiet)
    shutil.copytree(reference, copy)
    with pytest.raises(UserError, match=f"trained on --data {reference}, now --data {copy};"):
        train_encoder(copy, run, dataclasses.replace(TINY_ENCODER, epochs=2), log=quiet)
    assert len(records(run / "metrics.jsonl")) == 1 and not (run / "resumes.jsonl").exists()
    train_encoder(copy, run, dataclasses.replace(TINY_ENCODER, epochs=2), log=quiet, allow_new_data=True)
    assert records(run / "resumes.jsonl")[-1]["data"] == [str(reference), str(copy)]
    assert [r["epoch"] for r in records(run / "metrics.jsonl")] == [1, 2]
