"""Oxford-102 on a miniature copy of its real layout: .mat labels and splits, StackGAN's unseen-class split,
captions paired with their images, a corrupt .mat file."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from conftest import failures, run, shard_samples, source_ctx, write_jpeg
from scipy.io import savemat

from s2ikit.config import load_preset
from s2ikit.data.sources import get_source
from s2ikit.utils.errors import UserError

LABELS = [1, 1, 2, 2, 3, 3, 1]  # image i (1-based) has class LABELS[i - 1]


def colour(image_id: int) -> tuple[int, int, int]:
    return (30 * image_id, 220 - 30 * image_id, 90)


def write_oxford(root: Path, pickles: bool = True) -> None:
    for i, label in enumerate(LABELS, 1):
        write_jpeg(root / "jpg" / f"image_{i:05d}.jpg", colour(i), (20, 28))
        text = root / "text_c10" / f"class_{label:05d}" / f"image_{i:05d}.txt"
        text.parent.mkdir(parents=True, exist_ok=True)
        text.write_text(f"flower {i} first\nflower {i} second\nflower {i} third\n")
    savemat(root / "imagelabels.mat", {"labels": np.array([LABELS], dtype=np.uint8)})
    savemat(
        root / "setid.mat", {"trnid": np.array([[1, 3]]), "valid": np.array([[5]]), "tstid": np.array([[2, 4, 6, 7]])}
    )
    if pickles:  # StackGAN's lists name "class_NNNNN/image_NNNNN"; classes 1-2 train, class 3 test
        for split, ids in (("train", [1, 2, 3, 4, 7]), ("test", [5, 6])):
            (root / "flowers" / split).mkdir(parents=True, exist_ok=True)
            names = [f"class_{LABELS[i - 1]:05d}/image_{i:05d}" for i in ids]
            (root / "flowers" / split / "filenames.pickle").write_bytes(pickle.dumps(names, protocol=2))


def oxford(root: Path, **settings):
    return get_source("oxford", load_preset("oxford", {"oxford": settings} if settings else {}), root)


def test_prepare_oxford_end_to_end(tmp_path, tts_cache):
    root, out = tmp_path / "raw", tmp_path / "out"
    write_oxford(root)
    (root / "text_c10/class_00001/image_00007.txt").unlink()
    report = run(source_ctx("oxford", root, out, tts_cache, oxford={"captions_per_image": 2}))
    splits = report.dataset["splits"]
    assert (splits["train"]["samples"], splits["test"]["samples"]) == (4, 2)
    assert (splits["train"]["captions"], splits["test"]["captions"]) == (8, 4)
    samples = shard_samples(out)
    assert {s["meta"]["class_id"] for s in samples.values() if s["meta"]["split"] == "test"} == {2}
    assert {s["meta"]["class_id"] for s in samples.values() if s["meta"]["split"] == "train"} == {0, 1}
    for key, sample in samples.items():
        image_id = int(key.removeprefix("image_"))
        assert sample["meta"]["class_id"] == LABELS[image_id - 1] - 1
        assert [c["text"] for c in sample["meta"]["captions"]] == [
            f"flower {image_id} first",
            f"flower {image_id} second",
        ]
        mean = np.asarray(sample["image"]).reshape(-1, 3).mean(axis=0)
        assert sample["image"].size == (16, 16) and np.abs(mean - colour(image_id)).max() < 8
    assert [(f["step"], f["key"]) for f in failures(out)] == [("index", "image_00007")]
    assert "missing caption file" in failures(out)[0]["error"]
    assert any("7 images, the published data set has 8,189" in n for n in report.dataset["notes"])


def test_without_pickles_the_split_is_setid_and_announced(tmp_path):
    write_oxford(tmp_path, pickles=False)
    source = oxford(tmp_path)
    split = {r.attributes["image_id"]: r.split for r in source.index()}
    assert split == {1: "train", 3: "train", 5: "train", 2: "test", 4: "test", 6: "test", 7: "test"}
    assert any("setid.mat" in n and "NOT comparable" in n for n in source.notes)


def test_corrupt_mat_and_missing_layout_are_one_line_errors(tmp_path):
    write_oxford(tmp_path)
    (tmp_path / "imagelabels.mat").write_bytes(b"MATLAB 5.0 MAT-file, truncated")
    with pytest.raises(UserError, match=r"imagelabels.mat: not a readable .mat file"):
        oxford(tmp_path).index()
    savemat(tmp_path / "imagelabels.mat", {"labelz": np.array([LABELS])})
    with pytest.raises(UserError, match=r"imagelabels.mat: no variable 'labels' \(found: labelz\)"):
        oxford(tmp_path).index()
    (tmp_path / "setid.mat").unlink()
    with pytest.raises(UserError, match=r"setid.mat: missing; expected the Oxford-102 layout"):
        oxford(tmp_path).check()
