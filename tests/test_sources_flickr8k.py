"""Flickr8k + Flickr Audio Caption Corpus on a miniature copy of its layout: recorded speech (no TTS) paired
with the right image, 16 kHz resampled to 22,050 Hz, and truncated, missing or absent recordings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import failures, run, shard_samples, source_ctx, write_jpeg, write_tone

from s2ikit.config import load_preset
from s2ikit.data.sources import get_source
from s2ikit.utils.errors import UserError

SPLITS = {"train": [1, 2, 3], "dev": [4], "test": [5, 6]}


def name(i: int) -> str:
    return f"{1000 + i}_ab{i}c"


def tone(i: int, n: int) -> tuple[float, float]:
    """Pitch (Hz) and length (s) of image i's n-th recording: unique, so each stored utterance names its source."""
    return 200.0 + 100 * i + 40 * n, 0.5 + 0.1 * i + 0.05 * n


def write_flickr8k(root: Path) -> None:
    text = root / "Flickr8k_text"  # the text archive unpacked into its own folder
    text.mkdir(parents=True)
    for split, ids in SPLITS.items():
        (text / f"Flickr_8k.{split}Images.txt").write_text("".join(f"{name(i)}.jpg\n" for i in ids))
    rows, tokens = [], []
    for i in range(1, 7):
        write_jpeg(root / "Flicker8k_Dataset" / f"{name(i)}.jpg", (40 * i, 90, 200 - 30 * i))
        for n in range(2):
            tokens.append(f"{name(i)}.jpg#{n}\tperson {i} does thing {n}")
            if i == 3:
                continue  # image 3 was never recorded
            wav = f"{name(i)}_{n}.wav"
            rows.append(f"{wav} {name(i)}.jpg #{n}")
            hz, seconds = tone(i, n)
            write_tone(root / "flickr_audio" / "wavs" / wav, hz, seconds)
    (root / "flickr_audio" / "wav2capt.txt").write_text("\n".join(rows) + "\n")
    (text / "Flickr8k.token.txt").write_text("\n".join(tokens) + "\n")


def test_prepare_flickr8k_end_to_end(tmp_path):
    root, out = tmp_path / "raw", tmp_path / "out"
    write_flickr8k(root)
    truncated = root / "flickr_audio/wavs" / f"{name(1)}_1.wav"
    truncated.write_bytes(truncated.read_bytes()[:4000])  # cut mid-utterance: libsndfile alone would accept it
    missing = root / "flickr_audio/wavs" / f"{name(2)}_1.wav"
    missing.unlink()
    report = run(source_ctx("flickr8k", root, out, tmp_path / "no-tts-cache"))
    assert not (tmp_path / "no-tts-cache").exists()  # nothing synthesized

    splits = report.dataset["splits"]
    assert (splits["train"]["samples"], splits["test"]["samples"]) == (2, 2)  # dev left out, image 3 unrecorded
    assert (splits["train"]["captions"], splits["test"]["captions"]) == (2, 4)
    samples = shard_samples(out)
    assert sorted(samples) == [name(i) for i in (1, 2, 5, 6)]
    for key, sample in samples.items():
        i = int(key.split("_")[0]) - 1000
        meta = sample["meta"]
        assert meta["class_id"] == -1 and meta["split"] == ("test" if i in SPLITS["test"] else "train")
        for caption, (pcm, rate) in zip(meta["captions"], sample["audio"]):
            n = caption["index"]
            assert caption["text"] == f"person {i} does thing {n}"
            hz, seconds = tone(i, n)
            assert rate == 22050 and abs(len(pcm) / rate - seconds) < 0.01  # resampled, duration kept
            spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64)))
            peak = np.fft.rfftfreq(len(pcm), 1 / rate)[spectrum.argmax()]
            assert abs(peak - hz) < 3, f"{key} c{n}: stored audio is not its own recording"
        mean = np.asarray(sample["image"]).reshape(-1, 3).mean(axis=0)
        assert np.abs(mean - (40 * i, 90, 200 - 30 * i)).max() < 8

    reasons = {(f["step"], f["key"], f["caption"]): f["error"] for f in failures(out)}
    assert reasons[("speech", name(1), 1)].startswith(f"{truncated}: truncated WAV")
    assert reasons[("speech", name(2), 1)].startswith(f"{missing}: unreadable audio")
    assert reasons[("index", name(3), None)].endswith(f"no spoken caption for Flicker8k_Dataset/{name(3)}.jpg")
    assert len(reasons) == 3
    assert any("6 images, the published data set has 8,000" in n for n in report.dataset["notes"])


def test_dev_images_can_join_the_training_split(tmp_path):
    write_flickr8k(tmp_path)
    preset = load_preset("flickr8k", {"flickr8k": {"dev_split": "train"}})
    records = get_source("flickr8k", preset, tmp_path).index()
    assert [r.key for r in records if r.split == "train"] == [name(i) for i in (1, 2, 4)]


def test_missing_split_list_names_both_places_looked(tmp_path):
    write_flickr8k(tmp_path)
    (tmp_path / "Flickr8k_text/Flickr_8k.testImages.txt").unlink()
    with pytest.raises(UserError, match=r"Flickr8k_text/Flickr_8k.testImages.txt: missing; expected the Flickr8k"):
        get_source("flickr8k", load_preset("flickr8k"), tmp_path).check()
    (tmp_path / "Flickr8k_text").rename(tmp_path / "elsewhere")
    with pytest.raises(UserError, match=r"Flickr_8k.trainImages.txt: missing \(also looked in .*Flickr8k_text\)"):
        get_source("flickr8k", load_preset("flickr8k"), tmp_path).check()


def test_a_moved_root_reindexes_but_redoes_no_work(tmp_path):
    write_flickr8k(tmp_path / "a")
    out = tmp_path / "out"
    first = run(source_ctx("flickr8k", tmp_path / "a", out, tmp_path / "cache"))
    assert first.ran["speech"] == 2
    (tmp_path / "a").rename(tmp_path / "b")  # records hold paths relative to the root
    again = run(source_ctx("flickr8k", tmp_path / "b", out, tmp_path / "cache"))
    assert again.finalized and not any(again.ran.values())


def test_a_repaired_recording_is_picked_up_by_the_next_run(tmp_path):
    root, out = tmp_path / "raw", tmp_path / "out"
    write_flickr8k(root)
    wav = root / "flickr_audio/wavs" / f"{name(5)}_0.wav"
    wav.write_bytes(wav.read_bytes()[:3000])  # cut short
    ctx = source_ctx("flickr8k", root, out, tmp_path / "cache")
    run(ctx)
    assert [(f["key"], f["caption"]) for f in failures(out)] == [(name(3), None), (name(5), 0)]
    write_tone(wav, *tone(5, 0))
    report = run(ctx)
    assert report.ran == {"speech": 1, "features": 1, "images": 0, "shards": 1}  # that one unit, not its image
    assert [f["key"] for f in failures(out)] == [name(3)]
    assert len(shard_samples(out)[name(5)]["audio"]) == 2
    assert not any(run(ctx).ran.values())


def test_too_short_recordings_are_recorded_failures(tmp_path):
    """100 and 1,600 samples at 16 kHz are valid WAVs, but too short for the speech encoder's 16 frames."""
    import soundfile as sf

    root, out = tmp_path / "raw", tmp_path / "out"
    write_flickr8k(root)
    short = {n: root / "flickr_audio/wavs" / f"{name(6)}_{i}.wav" for i, n in enumerate((100, 1600))}
    for n, path in short.items():
        sf.write(path, np.full(n, 0.1), 16000, subtype="PCM_16")
    run(source_ctx("flickr8k", root, out, tmp_path / "cache"))
    reasons = {(f["key"], f["caption"]): f["error"] for f in failures(out)}
    for i, (n, path) in enumerate(short.items()):
        assert reasons[(name(6), i)] == (
            f"{path}: too short ({n / 16000:.3f} s); an utterance needs at least 0.15 s to give the speech encoder "
            "its 16 frames"
        )
    assert name(6) not in shard_samples(out)  # no usable caption left
    assert min(c["frames"] for s in shard_samples(out).values() for c in s["meta"]["captions"]) >= 16
