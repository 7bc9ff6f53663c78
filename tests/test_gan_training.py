"""train-gan on the tiny prepared set: it learns something, resumes exactly, guards divergence, runs under DDP."""

import dataclasses
import json

import pytest
import torch
from conftest import GAN, torchrun

from s2ikit.config import GANConfig
from s2ikit.core import checkpoints
from s2ikit.models.discriminator import Discriminator
from s2ikit.models.generator import Generator
from s2ikit.training.gan import train_gan
from s2ikit.utils.errors import UserError


def metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_two_steps_change_generator_and_discriminator(reference, encoder_run, tmp_path):
    run = tmp_path / "gan"
    train_gan(reference, encoder_run, run, GAN, max_steps=2, log=lambda s: None)
    torch.manual_seed(GAN.seed)  # the same initialisation train_gan starts from
    G0, D0 = Generator(16, 32, 4), Discriminator(16, 32, 4)
    state = checkpoints.load(run / "checkpoints/gan-state.pt", "gan-state")
    assert state["step"] == 2
    for initial, key in ((G0, "G"), (D0, "D")):
        changed = [k for k, v in initial.state_dict().items() if not torch.equal(v, state[key][k])]
        assert len(changed) > 10, key
    assert [m["step"] for m in metrics(run)] == [1, 2]
    assert (run / "samples/step-0000002.png").is_file()
    generator = checkpoints.load(run / "checkpoints/generator.pt", "generator")
    G = Generator(**generator["generator_args"])
    G.load_state_dict(generator["generator"])


def test_resume_reproduces_the_uninterrupted_losses(reference, encoder_run, tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    # mode seeking's partner images draw z from the step's rng too; LeCam's anchors are carried in the state
    config = dataclasses.replace(GAN, mode_seeking_weight=0.3, lecam_weight=0.3)
    train_gan(reference, encoder_run, straight, config, max_steps=5, log=lambda s: None)
    train_gan(reference, encoder_run, resumed, config, max_steps=2, log=lambda s: None)  # checkpoint at step 2
    logs = []
    train_gan(reference, encoder_run, resumed, config, max_steps=5, log=logs.append)
    assert any("resuming" in line and "step 2" in line for line in logs)
    a, b = metrics(straight), metrics(resumed)
    assert [m["step"] for m in b] == [1, 2, 3, 4, 5] and "g_mode_seeking" in b[-1] and "d_lecam" in b[-1]
    for x, y in zip(a, b):  # exact, with the speech cache on (the default)
        assert {k: v for k, v in x.items() if k != "seconds"} == {k: v for k, v in y.items() if k != "seconds"}
    for kind, name in (("gan-state", "gan-state.pt"), ("generator", "generator.pt")):
        x, y = (checkpoints.load(run / "checkpoints" / name, kind) for run in (straight, resumed))
        for key in ("G", "D", "generator") if kind == "gan-state" else ("generator",):
            if key in x:
                assert all(torch.equal(x[key][k], y[key][k]) for k in x[key]), (name, key)
    logs = []
    assert train_gan(reference, encoder_run, resumed, config, max_steps=5, log=logs.append)["already_complete"]
    assert any("already complete at step 5 of 5" in line for line in logs)
    assert len(metrics(resumed)) == 5


def test_resume_refuses_a_change_that_shapes_the_networks_and_lists_the_others(reference, encoder_run, tmp_path):
    import dataclasses

    run = tmp_path / "run"
    train_gan(reference, encoder_run, run, GAN, max_steps=2, log=lambda s: None)
    stale = run / "checkpoints" / ".gan-state.pt.tmp-999999999"  # left by a killed save
    stale.write_bytes(b"partial")
    wider = dataclasses.replace(GAN, ngf=8)
    with pytest.raises(UserError) as refused:
        train_gan(reference, encoder_run, run, wider, max_steps=4, log=lambda s: None)
    message = str(refused.value)
    assert "\n" not in message and "gan.ngf=4, now 8" in message and "shapes the networks" in message
    assert not stale.exists()
    logs = []
    faster = dataclasses.replace(GAN, lr_d=GAN.lr_d * 2)
    train_gan(reference, encoder_run, run, faster, max_steps=3, log=logs.append)
    assert any(f"gan.lr_d {GAN.lr_d} -> {GAN.lr_d * 2}" in line for line in logs)
    assert json.loads((run / "config.json").read_text())["gan"]["lr_d"] == GAN.lr_d * 2
    assert json.loads((run / "resumes.jsonl").read_text().splitlines()[-1])["changed"]["lr_d"] == [
        GAN.lr_d, GAN.lr_d * 2
    ]  # fmt: skip


def test_divergence_stops_and_keeps_the_last_good_checkpoint(reference, encoder_run, tmp_path):
    run = tmp_path / "diverge"
    train_gan(reference, encoder_run, run, GAN, max_steps=2, log=lambda s: None)
    before = (run / "checkpoints/gan-state.pt").read_bytes()
    strict = GANConfig(**{**GAN.__dict__, "divergence_threshold": 1e-9})
    with pytest.raises(UserError, match="diverged between steps 2 and 3.*gan-state.pt"):
        train_gan(reference, encoder_run, run, strict, max_steps=4, log=lambda s: None)
    assert (run / "checkpoints/gan-state.pt").read_bytes() == before


def test_two_process_ddp_gan_training_on_cpu(reference, encoder_run, tmp_path):
    run = tmp_path / "ddp"
    sets = ["gan.image_size=32", "gan.ngf=4", "gan.ndf=4", "gan.batch_size=4", "gan.num_workers=0", "gan.log_every=1"]
    args = ["-m", "s2ikit", "train-gan", "-d", str(reference), "-e", str(encoder_run), "-r", str(run), "--steps", "2"]
    for s in sets:
        args += ["--set", s]
    result = torchrun(args, port=29555)
    assert result.returncode == 0, result.stderr[-2000:]
    assert [m["step"] for m in metrics(run)] == [1, 2]  # written by rank 0 only
    assert (run / "checkpoints/generator.pt").is_file()


def test_ema_window_grows_with_the_run_up_to_the_configured_decay():
    import dataclasses

    from s2ikit.training.ema import ema_decay_at

    cfg = dataclasses.replace(GAN, ema_decay=0.999, ema_rampup=0.25)
    assert (
        ema_decay_at(cfg.ema_decay, cfg.ema_rampup, 0) == 0.0
    )  # the first update copies G: the EMA never holds the random initialisation
    windows = [1 / (1 - ema_decay_at(cfg.ema_decay, cfg.ema_rampup, t)) for t in (399, 2899, 3999, 50_000)]
    assert windows[:2] == pytest.approx([100, 725])  # a quarter of the steps done
    assert windows[2:] == pytest.approx([1000, 1000])  # capped by ema_decay


def test_standing_statistics_fit_the_ema_generator_itself():
    from s2ikit.training.ema import standing_statistics

    torch.manual_seed(0)
    G = Generator(16, 32, 4).eval()
    speech = torch.nn.functional.normalize(torch.randn(64, 16), dim=1)
    for m in G.modules():  # statistics copied from another network: far from this one's activations
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.fill_(3.0), m.running_var.fill_(0.01)
    z = torch.randn(64, GAN.z_dim, generator=torch.Generator().manual_seed(GAN.seed + 104_729))
    stale = G(z, speech)
    standing_statistics(G, [speech], GAN.z_dim, GAN.seed + 104_729)  # the bank pass draws the z above
    assert not G.training
    with torch.no_grad():
        fitted = G(z, speech)
        batch_stats = G.train()(z, speech)  # what the same weights do with their own batch statistics
    assert (fitted - batch_stats).abs().max() < 0.05 < (stale - batch_stats).abs().max()


def test_standing_statistics_average_the_whole_bank_as_a_cumulative_mean():
    import copy

    from s2ikit.training.ema import standing_statistics

    torch.manual_seed(0)
    G = Generator(16, 32, 4).eval()
    bank = [torch.nn.functional.normalize(torch.randn(8, 16), dim=1) for _ in range(3)]
    reference = copy.deepcopy(G).train()
    norms = [m for m in reference.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in norms:  # BatchNorm's own cumulative average: momentum None
        m.reset_running_stats(), setattr(m, "momentum", None)
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for speech in bank:
            reference(torch.randn(8, GAN.z_dim, generator=gen), speech)
    with torch.no_grad():
        standing_statistics(G, bank, GAN.z_dim, 7)
    fitted = [m for m in G.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for a, b in zip(fitted, norms):
        assert torch.equal(a.running_mean, b.running_mean) and torch.equal(a.running_var, b.running_var)
        assert a.momentum == 0.1  # the layer's own momentum is back for training


def test_speech_cache_holds_every_training_utterance_once_whatever_the_batches(reference, encoder_run):
    from contextlib import nullcontext

    from s2ikit.config import LoaderConfig
    from s2ikit.core.factories import load_encoders
    from s2ikit.data.loader import make_loader
    from s2ikit.training.speech_cache import SpeechEmbeddings

    speech = load_encoders(encoder_run)[0].speech.eval()
    seen = []

    class Counting(torch.nn.Module):
        def forward(self, mel, lengths):
            seen.append(len(lengths))
            return speech(mel, lengths)

    cached = SpeechEmbeddings(Counting(), nullcontext(), torch.device("cpu"), reference)
    utterances = sum(len(b["key"]) for b in make_loader(reference, LoaderConfig(split="train", mode="test")))
    assert sum(seen) == utterances  # every training utterance, once, before the first step
    for seed in (0, 1):  # two different batchings of the same utterances give the same embeddings, bit for bit
        for batch in make_loader(reference, LoaderConfig(batch_size=3, seed=seed)):
            with torch.no_grad():
                expected = speech(batch["mel"], batch["mel_lengths"])
            looked_up = cached(batch)
            torch.testing.assert_close(looked_up, expected, rtol=1e-4, atol=1e-5)
            key = (batch["key"][0], int(batch["caption_index"][0]))
            assert torch.equal(looked_up[0], cached.embedding(key))
    assert sum(seen) == utterances  # lookups never run the encoder
    fresh = SpeechEmbeddings(Counting(), nullcontext(), torch.device("cpu"), None)
    batch = next(iter(make_loader(reference, LoaderConfig(batch_size=3))))
    assert fresh.known is None and fresh(batch).shape == (3, 16) and seen[-1] == 3


def test_a_time_budget_is_an_opt_in_guard_that_says_so_when_it_stops_a_run(reference, encoder_run, tmp_path):
    import dataclasses

    from s2ikit.core.inference import load_bundle

    run, logs = tmp_path / "budget", []
    config = dataclasses.replace(GAN, time_budget_minutes=1e-6)  # runs out after the first step
    status = train_gan(reference, encoder_run, run, config, max_steps=50, log=logs.append)
    assert status == {"reason": "time_budget", "step": 1, "total_steps": 50, "time_budget_minutes": 1e-6}
    assert json.loads((run / "status.json").read_text()) == {**status, "exit_code": 76}  # exit_codes.TIME_BUDGET
    assert metrics(run)[-1] == {"epoch": 1, "event": "stopped", **status}
    assert any("WARNING: the time budget" in line and "step 1 of 50" in line for line in logs)
    assert load_bundle(run).info["stopped"] == status  # what evaluate's report states
    done = train_gan(reference, encoder_run, tmp_path / "full", GAN, max_steps=2, log=lambda s: None)
    assert done == {"reason": "schedule", "step": 2, "total_steps": 2}


def test_a_run_killed_before_its_first_checkpoint_logs_each_step_once(reference, encoder_run, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    # what a kill between the first log line and the first checkpoint leaves: lines, but no training state
    (run / "metrics.jsonl").write_text(json.dumps({"step": 1, "epoch": 1, "d_loss": 9.0}) + "\n")
    train_gan(reference, encoder_run, run, GAN, max_steps=2, log=lambda s: None)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2] and records[0]["d_loss"] != 9.0
