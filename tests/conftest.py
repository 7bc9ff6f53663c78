"""Shared fixtures: a tiny shapes preset and one uninterrupted reference preparation of it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from s2ikit.config import EncoderConfig, GANConfig, load_preset
from s2ikit.preparation.prepare import PrepareReport, RunOptions, prepare
from s2ikit.preparation.steps import PrepareContext

# 8 classes x 2 images x 2 captions; 3 images per shard -> 3 shards per split. About 25 distinct sentences.
TINY = {
    "shapes": {
        "images_per_class": 2,
        "captions_per_image": 2,
        "test_fraction": 0.5,
        "colours": "red,blue",
        "shapes": "circle,square",
        "sizes": "small,large",
    },
    "prepare": {"shard_size": 3, "image_size": 32},
    # one voice (the preset's many would make every test speak with 15): tests of many voices set their own
    "tts": {"length_scales": "1.0", "voices": "", "formant_shifts": "1.0", "rooms": "0.0"},
}


def tiny_overrides(**extra: dict) -> dict:
    merged = {k: dict(v) for k, v in TINY.items()}
    for section, values in extra.items():
        merged.setdefault(section, {}).update(values)
    return merged


def make_ctx(out: Path, cache: Path, **extra: dict) -> PrepareContext:
    preset = load_preset("shapes", tiny_overrides(**extra))
    return PrepareContext(out=out, dataset="shapes", preset=preset, root=None, cache_dir=cache)


def run(ctx: PrepareContext, **options) -> PrepareReport:
    return prepare(ctx, RunOptions(**options))


def output_files(out: Path) -> dict[str, bytes]:
    """What a user consumes: the shards, their sizes and the failures list."""
    files = sorted((out / "shards").rglob("*")) + [out / "failures.jsonl"]
    return {str(p.relative_to(out)): p.read_bytes() for p in files if p.is_file()}


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    """Tests never fetch weights from the network; tests/test_weights.py serves its own on 127.0.0.1."""
    monkeypatch.setenv("S2IKIT_OFFLINE", "1")


@pytest.fixture(scope="session")
def tts_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("tts-cache")


@pytest.fixture(scope="session")
def reference(tmp_path_factory, tts_cache) -> Path:
    out = tmp_path_factory.mktemp("reference")
    report = run(make_ctx(out, tts_cache))
    assert report.finalized
    return out


def torchrun(args: list[str], port: int, timeout: int = 300):
    """Run `args` under torchrun with 2 CPU processes (gloo), one thread each; returns the CompletedProcess."""
    import os
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port), *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


# Tiny networks for the training and evaluation tests: seconds on CPU, on the `reference` data set.
ENCODER = EncoderConfig(embed_dim=16, attention_hidden=8, conv_channels=(8, 8), rnn_layers=1, image_encoder="cnn",
                        cnn_width=4, batch_size=3, epochs=1, val_fraction=0.25, num_workers=0)  # fmt: skip
GAN = GANConfig(image_size=32, ngf=4, ndf=4, batch_size=3, num_workers=0, log_every=1, sample_every=2,
                checkpoint_every=2, epochs=100)  # fmt: skip


@pytest.fixture(scope="session")
def encoder_run(reference, tmp_path_factory) -> Path:
    from s2ikit.training.encoder import train_encoder

    run = tmp_path_factory.mktemp("encoder-run")
    train_encoder(reference, run, ENCODER, log=lambda s: None)
    return run


@pytest.fixture(scope="session")
def gan_run(reference, encoder_run, tmp_path_factory) -> Path:
    from s2ikit.training.gan import train_gan

    run = tmp_path_factory.mktemp("gan-run")
    # the dihedral output layer on: what exports, evaluates and generates from this run must draw through it
    train_gan(reference, encoder_run, run, dataclasses.replace(GAN, output_symmetry="dihedral"), max_steps=2,
              log=lambda s: None)  # fmt: skip
    return run


# ---- miniature copies of the real data sets' layouts (tests/test_sources_*.py) ----------------------------
def write_jpeg(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (24, 16), box=None, inner=None):
    """A small solid JPEG; `box` (left, top, right, bottom) filled with `inner` when given."""
    from PIL import Image, ImageDraw

    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", size, colour)
    if box is not None:
        ImageDraw.Draw(image).rectangle(box, fill=inner)
    image.save(path, format="JPEG", quality=95)


def write_tone(path: Path, hz: float, seconds: float, rate: int = 16000) -> None:
    """A 16-bit WAV holding one sine tone: its pitch tells which recording a stored utterance came from."""
    import numpy as np
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(rate * seconds)) / rate
    sf.write(path, 0.5 * np.sin(2 * np.pi * hz * t), rate, subtype="PCM_16")


def py2_pickle(strings: list[str]) -> bytes:
    """A list of str as Python 2's pickle.dump(..., protocol=2) writes it (StackGAN's filenames.pickle):
    SHORT_BINSTRING opcodes (Python 2 str = bytes), which Python 3 cannot produce itself."""
    out = bytearray(b"\x80\x02]q\x00(")
    for i, s in enumerate(strings, 1):
        data = s.encode("latin1")
        out += b"U" + bytes([len(data)]) + data + b"q" + bytes([i])
    return bytes(out + b"e.")


def source_ctx(dataset: str, root: Path, out: Path, cache: Path, **sections: dict) -> PrepareContext:
    """A small preparation of a data set at `root`: 16-px images, 2 images a shard, one speaking rate."""
    overrides = {"prepare": {"shard_size": 2, "image_size": 16}, "tts": {"length_scales": "1.0"}}
    for section, values in sections.items():
        overrides.setdefault(section, {}).update(values)
    return PrepareContext(out=out, dataset=dataset, preset=load_preset(dataset, overrides), root=root, cache_dir=cache)


def shard_samples(out: Path) -> dict[str, dict]:
    """Every sample of every shard: key -> {"meta": json, "image": PIL image, "audio": [(pcm, rate), ...]}."""
    import io
    import json
    import tarfile

    from PIL import Image

    from s2ikit.audio.codec import decode_flac

    samples = {}
    for path in sorted((out / "shards").rglob("*.tar")):
        with tarfile.open(path) as tar:
            members = {name: tar.extractfile(name).read() for name in tar.getnames()}
        for name, data in members.items():
            if name.endswith(".json"):
                meta = json.loads(data)
                key = meta["key"]
                image_name = next(n for n in members if n.startswith(key + ".") and n.endswith((".jpg", ".png")))
                samples[key] = {
                    "meta": meta,
                    "image": Image.open(io.BytesIO(members[image_name])).convert("RGB"),
                    "audio": [decode_flac(members[f"{key}.c{c['index']:02d}.flac"]) for c in meta["captions"]],
                }
    return samples


def failures(out: Path) -> list[dict]:
    import json

    return [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
