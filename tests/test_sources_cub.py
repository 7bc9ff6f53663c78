"""CUB-200-2011 on a miniature copy of its real layout: StackGAN's unseen-class split, captions paired with
their images, AttnGAN's bounding-box crop, fallbacks, and bad inputs (missing caption, bad JPEG, evil pickle)."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from conftest import failures, py2_pickle, run, shard_samples, source_ctx, write_jpeg

from s2ikit.config import load_preset
from s2ikit.data.sources import get_source
from s2ikit.data.sources.cub import attngan_crop
from s2ikit.utils.errors import UserError

CLASSES = {1: "001.Red_bird", 2: "002.Green_bird", 3: "003.Blue_bird"}
BBOX = (15, 15, 10, 10)  # x, y, w, h in a 40 x 40 image


def inner_colour(image_id: int) -> tuple[int, int, int]:
    return (25 * image_id, 240 - 25 * image_id, 60 + 15 * image_id)


def write_cub(root: Path, pickles: bool = True) -> None:
    """3 classes x 3 images. StackGAN's pickles: classes 1-2 train, class 3 test (written as Python 2 did)."""
    meta = root / "CUB_200_2011"
    images, labels, split, boxes, stems = [], [], [], [], {"train": [], "test": []}
    for image_id in range(1, 10):
        class_id = (image_id - 1) // 3 + 1
        folder = CLASSES[class_id]
        name = f"{folder.split('.')[1]}_{image_id:04d}_{100 + image_id}"
        images.append(f"{image_id} {folder}/{name}.jpg")
        labels.append(f"{image_id} {class_id}")
        split.append(f"{image_id} {image_id % 2}")  # CUB's own split: every class in both
        boxes.append(f"{image_id} " + " ".join(f"{v:.1f}" for v in BBOX))
        x, y, w, h = BBOX
        write_jpeg(
            meta / "images" / folder / f"{name}.jpg",
            (128, 128, 128),
            (40, 40),
            (x, y, x + w - 1, y + h - 1),
            inner_colour(image_id),
        )
        text = root / "birds" / "text" / folder / f"{name}.txt"
        text.parent.mkdir(parents=True, exist_ok=True)
        text.write_text(f"a bird number {image_id}\n\nthe bird {image_id} again\na third line\n")
        stems["test" if class_id == 3 else "train"].append(f"{folder}/{name}")
    for name, rows in (
        ("images", images),
        ("image_class_labels", labels),
        ("train_test_split", split),
        ("bounding_boxes", boxes),
    ):
        (meta / f"{name}.txt").write_text("\n".join(rows) + "\n")
    (meta / "classes.txt").write_text("".join(f"{i} {n}\n" for i, n in CLASSES.items()))
    if pickles:
        for split_name, entries in stems.items():
            (root / "birds" / split_name).mkdir(parents=True, exist_ok=True)
            (root / "birds" / split_name / "filenames.pickle").write_bytes(py2_pickle(entries))


def cub(root: Path, **cub_settings):
    return get_source("cub", load_preset("cub", {"cub": cub_settings} if cub_settings else {}), root)


def test_prepare_cub_end_to_end(tmp_path, tts_cache):
    root, out = tmp_path / "raw", tmp_path / "out"
    write_cub(root)
    missing_caption = next((root / "birds/text/001.Red_bird").glob("*_0002_*.txt"))
    missing_caption.unlink()
    bad_jpeg = next((root / "CUB_200_2011/images/002.Green_bird").glob("*_0004_*.jpg"))
    bad_jpeg.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    report = run(source_ctx("cub", root, out, tts_cache, cub={"captions_per_image": 2}))

    splits = report.dataset["splits"]
    assert (splits["train"]["samples"], splits["test"]["samples"]) == (4, 3)
    assert splits["train"]["captions"] == 10  # the failed JPEG's two captions are synthesized, then dropped
    samples = shard_samples(out)
    by_split = {
        s: {v["meta"]["class_id"] for v in samples.values() if v["meta"]["split"] == s} for s in ("train", "test")
    }
    assert by_split == {"train": {0, 1}, "test": {2}}  # unseen classes really unseen
    for sample in samples.values():
        meta = sample["meta"]
        image_id = meta["attributes"]["image_id"]
        assert [c["text"] for c in meta["captions"]] == [f"a bird number {image_id}", f"the bird {image_id} again"]
        assert meta["class_name"] == CLASSES[meta["class_id"] + 1]
        assert sample["image"].size == (16, 16)
        centre = np.asarray(sample["image"])[4:12, 4:12].reshape(-1, 3).mean(axis=0)
        assert np.abs(centre - inner_colour(image_id)).max() < 12, "image not paired, or not cropped to the bird"
        assert all(rate == 22050 and len(pcm) > 22050 // 4 for pcm, rate in sample["audio"])

    reasons = {(f["step"], f["key"]): f["error"] for f in failures(out)}
    key_2 = missing_caption.stem
    assert reasons[("index", key_2)] == f"{missing_caption}: missing caption file"
    assert (
        "unreadable image" in reasons[("images", bad_jpeg.stem)] and str(bad_jpeg) in reasons[("images", bad_jpeg.stem)]
    )
    assert report.dataset["failures"] == 2
    notes = json.loads((out / "dataset.json").read_text())["notes"]
    assert any("9 images, the published data set has 11,788" in n for n in notes)
    assert not any("NOT comparable" in n for n in notes)


def test_attngan_crop_is_centred_on_the_box_and_clamped():
    crop = attngan_crop([10, 20, 40, 30])  # r = int(40 * 0.75) = 30, centre (30, 35)
    assert crop(500, 500) == (0, 5, 60, 65)
    assert crop(50, 60) == (0, 5, 50, 60)


def test_bbox_crop_can_be_turned_off(tmp_path):
    write_cub(tmp_path)
    for crop, inside in ((True, True), (False, False)):
        source = cub(tmp_path, bbox_crop=crop)
        record = source.index()[0]
        assert record.attributes["crop"] is crop
        centre = np.asarray(source.load_image(record, 16))[4:12, 4:12].reshape(-1, 3).mean(axis=0)
        assert bool(np.abs(centre - inner_colour(1)).max() < 12) == inside


def test_fallback_splits_are_announced_as_not_comparable(tmp_path):
    write_cub(tmp_path, pickles=False)
    source = cub(tmp_path)
    records = source.index()
    assert {r.class_id for r in records if r.split == "test"} == {0, 1, 2}  # CUB's own split: classes seen
    assert any("train_test_split.txt" in n and "NOT comparable" in n for n in source.notes)

    (tmp_path / "test_classes.txt").write_text("002.Green_bird\n3\n")
    source = cub(tmp_path, test_classes="test_classes.txt")
    records = source.index()
    assert {r.class_id for r in records if r.split == "test"} == {1, 2}
    assert {r.class_id for r in records if r.split == "train"} == {0}
    assert any("test_classes.txt" in n and "NOT comparable" in n for n in source.notes)

    (tmp_path / "test_classes.txt").write_text("004.Purple_bird\n")
    with pytest.raises(UserError, match=r"test_classes.txt:1: '004.Purple_bird' is not a class"):
        cub(tmp_path, test_classes="test_classes.txt").index()


def test_limit_takes_the_first_images_of_each_split(tmp_path):
    write_cub(tmp_path)
    records = cub(tmp_path, limit=2).index()
    assert [r.attributes["image_id"] for r in records] == [1, 2, 7, 8]


def test_missing_layout_fails_at_once_with_one_line(tmp_path):
    write_cub(tmp_path)
    (tmp_path / "CUB_200_2011/images.txt").unlink()
    with pytest.raises(UserError) as e:
        cub(tmp_path).check()
    assert (
        str(e.value)
        == f"{tmp_path}/CUB_200_2011/images.txt: missing; expected the CUB-200-2011 layout (see README, 'Data sets')"
    )
    write_cub(tmp_path)
    (tmp_path / "birds/test/filenames.pickle").unlink()
    with pytest.raises(
        UserError, match="birds/test/filenames.pickle: missing, but birds/train/filenames.pickle is there"
    ):
        cub(tmp_path).check()


class Exploit:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_malicious_pickle_is_refused_and_never_run(tmp_path):
    write_cub(tmp_path)
    marker = tmp_path / "pwned"
    evil = tmp_path / "birds/train/filenames.pickle"
    evil.write_bytes(pickle.dumps([Exploit(marker)], protocol=2))
    with pytest.raises(UserError) as e:
        cub(tmp_path).index()
    assert str(e.value).startswith(f"{evil}: not a plain-data pickle, not loaded")
    assert "system" in str(e.value)
    assert not marker.exists()
    pickle.loads(pickle.dumps([Exploit(marker)]))  # the same bytes would have run the command
    assert marker.exists()


def test_malformed_tables_name_the_file_and_line(tmp_path):
    write_cub(tmp_path)
    labels = tmp_path / "CUB_200_2011/image_class_labels.txt"
    labels.write_text(labels.read_text().replace("2 1\n", "2 one\n"))
    with pytest.raises(UserError, match=r"image_class_labels.txt:2: 'one' is not a number"):
        cub(tmp_path).index()
    labels.write_text(labels.read_text().replace("2 one\n", "2 7\n"))
    with pytest.raises(UserError, match=r"image_class_labels.txt: image 2 has class 7, not in classes.txt"):
        cub(tmp_path).index()


def test_split_lists_must_be_plain_lists_of_names(tmp_path):
    from s2ikit.data.safe_pickle import load_name_list

    path = tmp_path / "filenames.pickle"
    path.write_bytes(py2_pickle(["001.Red_bird/Red_bird_0001_101", "caf\xe9"]))  # Python 2 str is latin-1 bytes
    assert load_name_list(path) == ["001.Red_bird/Red_bird_0001_101", "caf\xe9"]
    path.write_bytes(pickle.dumps({"not": "a list"}))
    with pytest.raises(UserError, match="expected a pickled list of file names, found dict"):
        load_name_list(path)
    path.write_bytes(b"\x80\x02]q\x00(U\x05ab")  # cut short
    with pytest.raises(UserError, match="not a plain-data pickle"):
        load_name_list(path)


def test_a_repaired_photo_is_picked_up_by_the_next_run(tmp_path, tts_cache):
    root, out = tmp_path / "raw", tmp_path / "out"
    write_cub(root)
    photo = next((root / "CUB_200_2011/images/002.Green_bird").glob("*_0004_*.jpg"))
    good = photo.read_bytes()
    photo.write_bytes(good[: len(good) // 3])  # a truncated download
    ctx = source_ctx("cub", root, out, tts_cache, cub={"captions_per_image": 2})
    run(ctx)
    assert [f["key"] for f in failures(out) if f["step"] == "images"] == [photo.stem]
    photo.write_bytes(good)
    report = run(ctx)
    assert report.ran == {"speech": 0, "features": 0, "images": 1, "shards": 1}  # only its unit's image and shard
    assert not [f for f in failures(out) if f["step"] == "images"]
    assert photo.stem in shard_samples(out)
    assert not any(run(ctx).ran.values())


def test_caption_files_must_be_utf8(tmp_path):
    write_cub(tmp_path)
    texts = sorted((tmp_path / "birds/text/001.Red_bird").glob("*.txt"))
    texts[0].write_bytes("a caf\xe9-brown bird\n".encode("latin-1"))
    texts[1].write_bytes("a small bird\n".encode("utf-16"))  # with its byte-order mark
    texts[2].write_bytes("a small bird\n".encode("utf-16-le"))  # without: valid UTF-8, full of NULs
    source = cub(tmp_path)
    before = source.identity()
    records = source.index()
    reasons = {f["key"]: f["error"] for f in source.left_out}
    assert reasons[texts[0].stem].startswith(f"{texts[0]}: caption file is not UTF-8: byte 0xe9 at offset 5")
    assert reasons[texts[1].stem].startswith(f"{texts[1]}: caption file is not UTF-8 (UTF-16?)")
    assert reasons[texts[2].stem].startswith(f"{texts[2]}: caption file is not UTF-8 text (it holds NUL bytes")
    assert len(records) == 6 and not any("\ufffd" in c.text for r in records for c in r.captions)
    texts[0].write_text("a caf\xe9-brown bird\n", encoding="utf-8")  # repaired: the index is rebuilt
    assert cub(tmp_path).identity() != before
    assert "a caf\xe9-brown bird" in [c.text for r in cub(tmp_path).index() for c in r.captions]


def test_a_decompression_bomb_is_refused_from_its_header(tmp_path, tts_cache):
    """A 12,000 x 12,000 (144 MP) PNG that compresses to a few KB: decoding it would take over 2 GB."""
    import warnings

    from PIL import Image

    root, out = tmp_path / "raw", tmp_path / "out"
    write_cub(root)
    bomb = next((root / "CUB_200_2011/images/001.Red_bird").glob("*_0001_*.jpg"))
    Image.new("1", (12000, 12000)).save(bomb, format="PNG")  # the name says .jpg; PIL goes by the content
    assert bomb.stat().st_size < 100_000
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # PIL's DecompressionBombWarning, naming no file, would fail here
        run(source_ctx("cub", root, out, tts_cache, cub={"captions_per_image": 2}))
    reasons = {(f["step"], f["key"]): f["error"] for f in failures(out)}
    assert reasons[("images", bomb.stem)] == (
        f"{bomb}: 12000x12000 pixels (144 MP) is over the 50 MP limit for source images; not decoded"
    )
    assert bomb.stem not in shard_samples(out) and len(shard_samples(out)) == 8
