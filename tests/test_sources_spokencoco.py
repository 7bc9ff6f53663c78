"""SpokenCOCO on a miniature copy of its published layout: Karpathy's split from the two JSON files, recorded
speech paired with COCO's images, the command, batches from the shards, and bad entries named in one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import run, shard_samples, source_ctx, write_jpeg, write_tone
from typer.testing import CliRunner

from s2ikit.cli import app
from s2ikit.config import LoaderConfig, load_preset
from s2ikit.data.loader import make_loader
from s2ikit.data.sources import get_source
from s2ikit.utils.errors import UserError

# (file, COCO image id, utterances): train2014 images in the train file, val2014 ones in the val file
IMAGES = [("train", 9, 2), ("train", 25, 1), ("train", 30, 3), ("val", 42, 2), ("val", 73, 1)]


def tone(image_id: int, n: int) -> float:
    return 250.0 + 3 * image_id + 40 * n


def write_spokencoco(root: Path) -> None:
    entries: dict[str, list] = {"train": [], "val": []}
    for file, image_id, utterances in IMAGES:
        image = f"{file}2014/COCO_{file}2014_{image_id:012d}.jpg"
        write_jpeg(root / image, (5 * image_id % 256, 120, 200 - 2 * image_id), (32, 24))
        captions = []
        for n in range(utterances):
            wav = f"wavs/{file}/{n % 2}/speaker{n}-UTT{image_id}_{image_id}_{100 + n}.wav"
            write_tone(root / "SpokenCOCO" / wav, tone(image_id, n), 0.4)
            captions.append({"text": f"PICTURE {image_id} SAID {n}", "speaker": f"speaker{n}",
                             "uttid": f"speaker{n}-UTT{image_id}_{image_id}_{100 + n}", "wav": wav,
                             "parse_tree": "( ( a picture ) )"})  # fmt: skip
        entries[file].append({"image": image, "captions": captions})
    for file, data in entries.items():
        (root / "SpokenCOCO" / f"SpokenCOCO_{file}.json").write_text(json.dumps({"data": data}))


def test_prepare_spokencoco_from_the_command_line_with_karpathys_split(tmp_path):
    root, out = tmp_path / "coco", tmp_path / "data"
    write_spokencoco(root)
    args = ["prepare", "spokencoco", "--root", str(root), "--out", str(out), "--image-size", "16"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    dataset = json.loads((out / "dataset.json").read_text())
    assert {s: v["samples"] for s, v in dataset["splits"].items()} == {"train": 3, "test": 2}
    assert {s: v["captions"] for s, v in dataset["splits"].items()} == {"train": 6, "test": 3}
    assert dataset["failures"] == 0 and dataset["settings"]["tts"] is None
    assert any("3 train images, the published data set has 118,287" in n for n in dataset["notes"])
    samples = shard_samples(out)
    for file, image_id, utterances in IMAGES:
        meta = samples[f"COCO_{file}2014_{image_id:012d}"]["meta"]
        assert meta["split"] == ("test" if file == "val" else "train") and meta["class_id"] == -1
        assert [c["text"] for c in meta["captions"]] == [f"PICTURE {image_id} SAID {n}" for n in range(utterances)]
        assert meta["attributes"]["speakers"] == [f"speaker{n}" for n in range(utterances)]
        for n, (pcm, rate) in enumerate(samples[f"COCO_{file}2014_{image_id:012d}"]["audio"]):
            spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64)))
            assert abs(np.fft.rfftfreq(len(pcm), 1 / rate)[spectrum.argmax()] - tone(image_id, n)) < 3
    batch = next(iter(make_loader(out, LoaderConfig(split="train", batch_size=2, shuffle_buffer=4))))
    assert batch["image"].shape == (2, 3, 16, 16) and batch["mel"].shape[0] == 2 and batch["mel"].shape[2] == 40
    shown = CliRunner().invoke(app, ["prepare", "spokencoco", "--help"], env={"COLUMNS": "200"}).output
    assert "s2ikit prepare spokencoco --root" in shown and "--val-split" in shown and "--tts" not in shown


def test_the_val_file_can_train_or_be_left_out_and_images_can_live_elsewhere(tmp_path, tts_cache):
    root = tmp_path / "coco"
    write_spokencoco(root)
    report = run(source_ctx("spokencoco", root, tmp_path / "a", tts_cache, spokencoco={"val_split": "train"}))
    assert report.dataset["splits"]["train"]["samples"] == 5 and "test" not in report.dataset["splits"]
    assert any("not comparable with Karpathy-split ones" in n for n in report.dataset["notes"])
    images = tmp_path / "datasets" / "coco-images"
    for folder in ("train2014", "val2014"):
        shutil.move(root / folder, images / folder)
    (root / "SpokenCOCO" / "SpokenCOCO_val.json").unlink()  # not needed when left out
    overrides = {"val_split": "none", "image_root": str(images)}
    report = run(source_ctx("spokencoco", root, tmp_path / "b", tts_cache, spokencoco=overrides))
    assert report.dataset["splits"]["train"]["samples"] == 3 and report.dataset["failures"] == 0


def _index_error(root: Path, **settings) -> str:
    with pytest.raises(UserError) as error:
        get_source("spokencoco", load_preset("spokencoco", {"spokencoco": settings}), root).index()
    assert "\n" not in str(error.value)
    return str(error.value)


def test_bad_entries_and_a_missing_layout_are_one_line(tmp_path):
    write_spokencoco(tmp_path)
    val = tmp_path / "SpokenCOCO" / "SpokenCOCO_val.json"
    data = json.loads(val.read_text())
    data["data"][1]["captions"][0]["wav"] = "../../../outside.wav"
    val.write_text(json.dumps(data))
    assert _index_error(tmp_path).startswith(f"{val}: entry 1: captions[0]: wav: ../../../outside.wav leaves the root")
    data["data"][1]["captions"][0]["wav"] = "wavs/val/0/nothing.wav"
    val.write_text(json.dumps(data))
    missing = tmp_path / "SpokenCOCO/wavs/val/0/nothing.wav"
    assert _index_error(tmp_path, probe_audio=True) == f"{val}: entry 1: captions[0]: wav: {missing}: missing"
    data["data"][0]["image"] = "val2014/COCO_val2014_000000999999.jpg"
    val.write_text(json.dumps(data))
    message = _index_error(tmp_path)
    assert message == f"{val}: entry 0: image: {tmp_path / 'val2014/COCO_val2014_000000999999.jpg'}: missing"
    data["data"][0] = {"image": "val2014/COCO_val2014_000000000042.jpg", "captions": [{"text": "NO WAV"}]}
    val.write_text(json.dumps(data))
    assert _index_error(tmp_path) == f"{val}: entry 0: captions[0]: wav: missing (each utterance names its recording)"
    data["data"][0]["captions"] = [{"text": "X" * 1001, "wav": "wavs/val/0/a.wav"}]
    val.write_text(json.dumps(data))
    assert _index_error(tmp_path).endswith("captions[0]: text: 1,001 characters, over the limit of 1,000")
    assert _index_error(tmp_path, max_entries=2).startswith(f"{tmp_path / 'SpokenCOCO/SpokenCOCO_train.json'}: 3 ")
    val.write_text('{"images": []}')
    assert _index_error(tmp_path).startswith(f'{val}: expected {{"data": [')
    (tmp_path / "SpokenCOCO" / "SpokenCOCO_train.json").unlink()
    assert _index_error(tmp_path) == (
        f"{tmp_path / 'SpokenCOCO/SpokenCOCO_train.json'}: missing; expected the SpokenCOCO + COCO 2014 images layout "
        "(see README, 'Data sets')"
    )
