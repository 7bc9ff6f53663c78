"""Places-subset on a miniature copy of the Places Audio Caption + Places205 layout: class filter, classes
from image paths, the stable hash split, recorded speech paired and resampled, and the CLI command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import run, shard_samples, source_ctx, write_jpeg, write_tone
from typer.testing import CliRunner

from s2ikit.cli import app
from s2ikit.config import load_preset
from s2ikit.data.sources import get_source
from s2ikit.data.sources.places import in_test, scene_class
from s2ikit.utils.errors import UserError

IMAGES = [  # (image path as in the metadata, expected class or None when filtered out)
    ("b/bedroom/gsun_aa01.jpg", "bedroom"),
    ("b/bedroom/gsun_aa02.jpg", "bedroom"),
    ("d/dinette/home/gsun_bb01.jpg", "dinette"),
    ("k/kitchenette/gsun_cc01.jpg", "kitchenette"),
    ("l/living_room/gsun_dd01.jpg", "living_room"),
    ("h/hotel_room/gsun_ee01.jpg", "hotel_room"),
    ("a/airport_terminal/gsun_ff01.jpg", None),
    ("k/kitchen/gsun_gg01.jpg", None),
]


def write_places(root: Path) -> None:
    data = []
    for i, (image, _) in enumerate(IMAGES):
        write_jpeg(root / "images256" / image, (25 * i, 100, 240 - 25 * i), (30, 20))
        wav = f"wavs/{i % 3}/utterance_{i}.wav"
        write_tone(root / "PlacesAudio_400k_distro" / wav, 300.0 + 110 * i, 0.4 + 0.05 * i)
        data.append({"wav": wav, "image": image, "uttid": f"U{i}", "speaker": f"S{i % 2}", "asr_text": f"room {i}"})
    meta = root / "PlacesAudio_400k_distro" / "metadata" / "train.json"
    meta.parent.mkdir(parents=True)
    meta.write_text(json.dumps({"image_base_path": "/somewhere/else", "audio_base_path": "/x", "data": data}))


def test_scene_class_reads_places205_paths():
    assert scene_class("b/bedroom/gsun_1.jpg") == "bedroom"
    assert scene_class("d/dinette/home/gsun_2.jpg") == "dinette"


def test_prepare_places_end_to_end(tmp_path):
    root, out = tmp_path / "raw", tmp_path / "out"
    write_places(root)
    report = run(source_ctx("places", root, out, tmp_path / "unused-cache", places={"test_fraction": 0.5}))
    samples = shard_samples(out)
    classes = load_preset("places").places.classes
    expected = {i: c for i, (_, c) in enumerate(IMAGES) if c}
    assert len(samples) == len(expected) == 6
    tests = sum(in_test(IMAGES[i][0], 0.5) for i in expected)
    assert 0 < tests < 6 and report.dataset["splits"]["test"]["samples"] == tests
    for sample in samples.values():
        meta = sample["meta"]
        i = int(meta["attributes"]["uttids"][0][1:])
        assert meta["class_name"] == expected[i] and meta["class_id"] == classes.index(expected[i])
        assert meta["split"] == ("test" if in_test(IMAGES[i][0], 0.5) else "train")
        assert [c["text"] for c in meta["captions"]] == [f"room {i}"]
        ((pcm, rate),) = sample["audio"]
        assert rate == 22050 and abs(len(pcm) / rate - (0.4 + 0.05 * i)) < 0.01
        spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64)))
        assert abs(np.fft.rfftfreq(len(pcm), 1 / rate)[spectrum.argmax()] - (300.0 + 110 * i)) < 3
        mean = np.asarray(sample["image"]).reshape(-1, 3).mean(axis=0)
        assert np.abs(mean - (25 * i, 100, 240 - 25 * i)).max() < 8
    assert report.dataset["failures"] == 0
    assert any("13,803" in n and "not published" in n for n in report.dataset["notes"])


def test_bad_metadata_is_one_line(tmp_path):
    write_places(tmp_path)
    meta = tmp_path / "PlacesAudio_400k_distro/metadata/train.json"
    meta.write_text('{"data": [{"wav": "a.wav", "image": "b/bedroom/x.jpg"}]}')
    with pytest.raises(UserError, match=r"train.json: entry 0 has no 'uttid' text field"):
        get_source("places", load_preset("places"), tmp_path).index()
    meta.write_text('{"data": [')
    with pytest.raises(UserError, match=r"train.json: not readable JSON"):
        get_source("places", load_preset("places"), tmp_path).index()


def test_prepare_places_from_the_command_line(tmp_path):
    root = tmp_path / "raw"
    write_places(root)
    metadata = root / "PlacesAudio_400k_distro/metadata/train.json"
    moved = tmp_path / "subset.json"  # --metadata may live outside the root
    metadata.rename(moved)
    args = ["prepare", "places", "--root", str(root), "--out", str(tmp_path / "d"), "--metadata", str(moved)]
    args += ["--limit", "2", "--set", "prepare.image_size=16", "--set", "places.test_fraction=0.5"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "prepared" in result.output and "--limit 2" in result.output
    dataset = json.loads((tmp_path / "d/dataset.json").read_text())
    assert all(split["samples"] <= 2 for split in dataset["splits"].values())
    result = CliRunner().invoke(app, ["prepare", "cub", "--root", str(root), "--out", str(tmp_path / "c")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "CUB_200_2011/images.txt: missing; expected the CUB-200-2011 layout" in result.output.replace("\n", "")


@pytest.mark.parametrize("dataset", ["cub", "oxford", "flickr8k", "places"])
def test_each_prepare_command_shows_an_example(dataset):
    result = CliRunner().invoke(app, ["prepare", dataset, "--help"])
    assert result.exit_code == 0 and f"s2ikit prepare {dataset} --root" in result.output.replace("\n", " ")
