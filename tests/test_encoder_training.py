"""train-encoder on the tiny prepared set: checkpoints, metrics, resume, embeddings export, DDP, CLI errors."""

import json
import os
from pathlib import Path

import h5py
import pytest
import torch
from conftest import torchrun
from typer.testing import CliRunner

from s2ikit.cli import app
from s2ikit.config import EncoderConfig
from s2ikit.core.factories import load_encoders
from s2ikit.training.embed import export_embeddings
from s2ikit.training.encoder import train_encoder

TINY_ENCODER = dict(
    embed_dim=32, attention_hidden=8, conv_channels=(16, 16), rnn_layers=1, image_encoder="cnn", cnn_width=8,
    batch_size=3, epochs=2, eval_every=1, val_fraction=0.25, num_workers=0, lr_step_epochs=1,
)  # fmt: skip


def test_train_validate_checkpoint_and_resume(reference, tmp_path):
    run = tmp_path / "run"
    logs = []
    train_encoder(reference, run, EncoderConfig(**{**TINY_ENCODER, "epochs": 1}), log=logs.append)
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 1
    best = train_encoder(reference, run, EncoderConfig(**TINY_ENCODER), log=logs.append)
    assert any("resuming" in line and "epoch 1" in line for line in logs)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert records[1]["lr"] == pytest.approx(1e-4)  # StepLR x0.1 per epoch here: the scheduler was restored
    assert {"val_s2i_mAP", "val_s2i_R@1", "val_i2s_R@10", "loss", "matching", "distinctive"} <= set(records[0])
    assert best["epoch"] in (1, 2) and 0.0 <= best["s2i_mAP"] <= 1.0
    enc, ckpt = load_encoders(run)
    assert ckpt["speech_args"]["embed_dim"] == 32
    config = json.loads((run / "config.json").read_text())
    assert config["encoder"]["batch_size"] == 3


def test_embeddings_export_every_utterance(reference, tmp_path):
    run = tmp_path / "run"
    train_encoder(reference, run, EncoderConfig(**{**TINY_ENCODER, "epochs": 1}), log=lambda s: None)
    counts = export_embeddings(run, reference, run / "embeddings.h5")
    assert counts == {"test": 16, "train": 16}
    with h5py.File(run / "embeddings.h5") as h5:
        assert h5["test/embeddings"].shape == (16, 32)
        assert h5["test/image_embeddings"].shape == (8, 32)
        keys = [k.decode() for k in h5["test/keys"][:]]
        assert len(set(keys)) == 16 and all("/" in k for k in keys)
        norms = torch.from_numpy(h5["train/embeddings"][:]).norm(dim=1)
        torch.testing.assert_close(norms, torch.ones(16), rtol=1e-4, atol=1e-4)


def test_two_process_ddp_training_on_cpu(reference, tmp_path):
    run = tmp_path / "ddp"
    sets = [f"encoder.{k}={','.join(map(str, v)) if isinstance(v, tuple) else v}" for k, v in TINY_ENCODER.items()]
    args = ["-m", "s2ikit", "train-encoder", "-d", str(reference), "-r", str(run), "--epochs", "1"]
    for s in sets:
        args += ["--set", s]
    args += ["--set", "encoder.batch_size=6"]  # the global batch: 3 per process, as the one-process tests train
    result = torchrun(args, port=29544)
    assert result.returncode == 0, result.stderr[-2000:]
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 1  # written once, by rank 0
    assert (run / "embeddings.h5").is_file() and (run / "checkpoints/encoder-best.pt").is_file()


# Run by torchrun (2 gloo processes) and, with no process group, by the test itself: rank r takes rows
# [3r, 3r + 3) of a fixed global batch of 6 through EncoderLoss (DDP-wrapped under torchrun) and saves its loss
# statistics and the gradients DDP leaves.
GATHER_SCRIPT = """
import sys
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from s2ikit.training.encoder_loss import EncoderLoss


class Speech(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(8, 4)

    def forward(self, mel, lengths):
        return F.normalize(self.proj(mel), dim=-1)


class Image(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(5, 4)

    def forward(self, image):
        return F.normalize(self.proj(image), dim=-1)


distributed = len(sys.argv) > 2
if distributed:
    dist.init_process_group("gloo")
rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
torch.manual_seed(0)
modules = [Speech(), Image(), nn.Linear(4, 5)]
data = torch.Generator().manual_seed(1)
mel, image = torch.randn(6, 8, generator=data), torch.randn(6, 5, generator=data)
class_id = torch.tensor([0, 1, 2, 0, 3, 4])  # class 0 on both processes: not a negative of itself across them
class_index = torch.tensor([0, 1, 2, 0, 3, 4])
rows = slice(rank * 6 // world, (rank + 1) * 6 // world)
wrapped = [DistributedDataParallel(m) for m in modules] if distributed else modules
loss, stats = EncoderLoss(*wrapped, 10.0, 0.5)(
    {"mel": mel[rows], "mel_lengths": torch.ones(6)[rows], "image": image[rows], "class_id": class_id[rows]},
    class_index[rows],
)
loss.backward()
grads = [p.grad for m in modules for p in m.parameters()]
torch.save({"stats": stats, "grads": grads}, sys.argv[1] + f".{rank}")
"""


def test_two_processes_see_each_others_negatives_and_take_one_process_double_batch_step(tmp_path):
    import subprocess
    import sys

    script = tmp_path / "gather.py"
    script.write_text(GATHER_SCRIPT)
    single = subprocess.run([sys.executable, str(script), str(tmp_path / "one")], capture_output=True, text=True)
    assert single.returncode == 0, single.stderr[-2000:]
    result = torchrun([str(script), str(tmp_path / "two"), "distributed"], port=29547)
    assert result.returncode == 0, result.stderr[-2000:]
    one = torch.load(tmp_path / "one.0")
    two = [torch.load(tmp_path / f"two.{rank}") for rank in (0, 1)]
    # the matching loss of each process is the global batch's, with its 6 x 6 similarities: the one process's,
    # up to the last bits of features computed 3 rows at a time instead of 6
    for part in two:
        torch.testing.assert_close(part["stats"]["matching"], one["stats"]["matching"], rtol=1e-6, atol=1e-6)
    # the distinctive loss is a per-sample mean: the processes' mean of means is the one process's mean
    mean = {k: (two[0]["stats"][k] + two[1]["stats"][k]) / 2 for k in one["stats"]}
    torch.testing.assert_close(mean, one["stats"], rtol=1e-6, atol=1e-6)
    # DDP's mean of the gathered loss's gradients is the global batch's gradient, on each process alike
    for part in two:
        torch.testing.assert_close(part["grads"], one["grads"], rtol=1e-5, atol=1e-6)


def test_missing_inception_weights_is_one_line(reference, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))
    result = CliRunner().invoke(app, ["train-encoder", "--data", str(reference), "--run", str(tmp_path / "r"),
                                      "--set", "encoder.image_encoder=inception_v3"])  # fmt: skip
    assert result.exit_code == 2
    assert "no Inception-v3 weights in" in result.output and "--image-weights" in result.output
    assert "Traceback" not in result.output


def test_corrupt_checkpoint_is_refused(tmp_path):
    from s2ikit.core.checkpoints import load
    from s2ikit.utils.errors import UserError

    bad = tmp_path / "checkpoints" / "encoder-best.pt"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="not a readable s2ikit checkpoint") as refused:
        load(bad, "encoder")
    assert "\n" not in str(refused.value)
    assert Path(bad).exists()


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch s2ikit-pwned",))


def test_checkpoint_with_code_is_not_executed(tmp_path, monkeypatch):
    from s2ikit.core.checkpoints import load
    from s2ikit.utils.errors import UserError

    monkeypatch.chdir(tmp_path)
    torch.save({"speech_encoder": _Evil()}, tmp_path / "evil.pt")
    with pytest.raises(UserError, match="possibly code.*it was not loaded") as refused:
        load(tmp_path / "evil.pt", "encoder")
    assert "\n" not in str(refused.value) and "weights_only" not in str(refused.value)
    assert not (tmp_path / "s2ikit-pwned").exists()
