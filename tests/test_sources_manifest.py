"""Any spoken-caption data set from a manifest: JSONL and CSV rows (recorded captions used as they are, text-only
ones spoken by the TTS), shards the encoder trains on, the command, and one line naming the file, the line and the
field for each kind of bad row."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import ENCODER, failures, run, shard_samples, source_ctx, write_jpeg, write_tone
from typer.testing import CliRunner

from s2ikit.cli import app
from s2ikit.config import load_preset
from s2ikit.data.sources import get_source
from s2ikit.utils.errors import UserError

# name: (colour, class, split, captions); a caption is (text, tone in Hz or None: spoken by the TTS)
PICTURES = {
    "cat0": ((200, 40, 40), "cat", "train", [("a red cat", 330.0), ("", 360.0)]),
    "cat1": ((40, 200, 40), "cat", "train", [("a green cat", None)]),
    "dog0": ((40, 40, 200), "dog", "train", [("a blue dog", None), ("a dog", 420.0)]),
    "dog1": ((200, 200, 40), "dog", "train", [("", 480.0)]),
    "cat2": ((40, 200, 200), "cat", "test", [("a cyan cat", 540.0)]),
    "dog2": ((200, 40, 200), "dog", "test", [("a purple dog", None)]),
}


def write_data(root: Path) -> list[dict]:
    """The pictures and recordings under root, and one JSONL row per caption (dog0's as one row per image)."""
    rows = []
    for name, (colour, cls, split, captions) in PICTURES.items():
        write_jpeg(root / "photos" / f"{name}.jpg", colour, (30, 20))
        entries = []
        for i, (text, hz) in enumerate(captions):
            caption = {"text": text} if text else {}
            if hz is not None:
                write_tone(root / "speech" / f"{name}-{i}.wav", hz, 0.5)
                caption["audio"] = f"speech/{name}-{i}.wav"
            entries.append(caption)
        image = {"image": f"photos/{name}.jpg", "split": split, "class": cls}
        if name == "dog0":
            rows.append({**image, "captions": [e.get("text", e) if list(e) == ["text"] else e for e in entries]})
        else:
            rows += [{**image, **caption} for caption in entries]
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_prepare_a_jsonl_manifest_and_train_on_its_shards(tmp_path, tts_cache):
    from s2ikit.training.encoder import train_encoder

    root, out = tmp_path / "mine", tmp_path / "data"
    manifest = write_jsonl(root / "captions.jsonl", write_data(root))
    report = run(source_ctx("manifest", None, out, tts_cache, manifest={"file": str(manifest)}))
    samples = shard_samples(out)
    assert sorted(samples) == sorted(f"photos_{n}" for n in PICTURES) and report.dataset["failures"] == 0
    assert report.dataset["classes"] == ["cat", "dog"] and report.dataset["settings"]["tts"] is not None
    for name, (colour, cls, split, captions) in PICTURES.items():
        sample = samples[f"photos_{name}"]
        meta = sample["meta"]
        assert (meta["class_name"], meta["class_id"], meta["split"]) == (cls, ["cat", "dog"].index(cls), split)
        assert [c["text"] for c in meta["captions"]] == [text for text, _ in captions]
        for (_, hz), (pcm, rate) in zip(captions, sample["audio"]):
            spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64)))
            peak = np.fft.rfftfreq(len(pcm), 1 / rate)[spectrum.argmax()]
            if hz is not None:  # the recording itself, resampled
                assert rate == 22050 and abs(len(pcm) / rate - 0.5) < 0.01 and abs(peak - hz) < 3
            else:  # spoken by the TTS: speech, whose energy is spread, unlike a tone's
                near = np.abs(np.fft.rfftfreq(len(pcm), 1 / rate) - peak) < 5
                assert len(pcm) / rate > 0.3 and (spectrum[near] ** 2).sum() < 0.5 * (spectrum**2).sum()
        mean = np.asarray(sample["image"]).reshape(-1, 3).mean(axis=0)
        assert np.abs(mean - colour).max() < 8
    assert any("6 images (4 train / 2 test), 5 recorded captions and 3 spoken" in n for n in report.dataset["notes"])

    encoder = dataclasses.replace(ENCODER, batch_size=2, val_fraction=0.25, epochs=2, eval_every=1)
    best = train_encoder(out, tmp_path / "encoder-run", encoder, log=lambda s: None)
    assert best and (tmp_path / "encoder-run" / "checkpoints").is_dir()


def test_prepare_a_csv_manifest_from_the_command_line(tmp_path):
    root = tmp_path / "mine"
    write_data(root)
    lines = ["class,image,split,audio,text"]  # any column order; recorded captions only: no TTS, no cache
    for name, (_, cls, split, captions) in PICTURES.items():
        for i, (text, hz) in enumerate(captions):
            if hz is not None:
                lines.append(f'{cls},photos/{name}.jpg,{split},speech/{name}-{i}.wav,"{text}"')
    manifest = tmp_path / "lists" / "captions.csv"
    manifest.parent.mkdir()
    manifest.write_text("\n".join(lines) + "\n")
    out = tmp_path / "data"
    args = ["prepare", "manifest", "--manifest", str(manifest), "--root", str(root), "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--image-size", "16", "--limit", "3"])
    assert result.exit_code == 0, result.output
    dataset = json.loads((out / "dataset.json").read_text())
    assert dataset["splits"]["train"]["samples"] == 3 and dataset["splits"]["test"]["samples"] == 1
    assert dataset["settings"]["tts"] is None  # every caption is recorded
    assert not (out / "failures.jsonl").read_text()
    metas = {s["meta"]["key"]: s["meta"] for s in shard_samples(out).values()}
    assert [c["text"] for c in metas["photos_cat0"]["captions"]] == ["a red cat", ""]
    result = CliRunner().invoke(app, ["prepare", "manifest", "--out", str(tmp_path / "o2")])
    assert result.exit_code == 2 and "--manifest FILE is required" in result.output
    shown = CliRunner().invoke(app, ["prepare", "manifest", "--help"], env={"COLUMNS": "200"}).output
    assert "s2ikit prepare manifest --manifest" in shown and "--tts" in shown and "--root" in shown


def test_a_missing_recording_found_later_is_a_failure_not_a_crash(tmp_path, tts_cache):
    """With manifest.probe_audio off the index trusts the rows; the speech step records the missing file."""
    root, out = tmp_path / "mine", tmp_path / "data"
    manifest = write_jsonl(root / "m.jsonl", write_data(root))
    (root / "speech" / "cat2-0.wav").unlink()
    run(source_ctx("manifest", None, out, tts_cache, manifest={"file": str(manifest), "probe_audio": False}))
    (speech,) = [f for f in failures(out) if f["step"] == "speech"]
    assert speech["key"] == "photos_cat2" and "cat2-0.wav" in speech["error"]
    assert sorted(shard_samples(out)) == sorted(f"photos_{n}" for n in PICTURES if n != "cat2")


GOOD = {"image": "photos/cat0.jpg", "split": "train", "class": "cat", "text": "a red cat"}


@pytest.mark.parametrize(
    ("row", "field", "problem"),
    [
        ({**GOOD, "image": "photos/nothing.jpg"}, "image", "photos/nothing.jpg: missing"),
        ({**GOOD, "image": "../outside.jpg"}, "image", "../outside.jpg leaves the root"),
        ({**GOOD, "image": "/etc/hostname"}, "image", "/etc/hostname leaves the root"),
        ({**GOOD, "text": ""}, "text, audio", "neither is given"),
        ({**GOOD, "split": "val"}, "split", "'val' is not one of train, test"),
        ({**GOOD, "text": "word " * 300}, "text", "1,500 characters, over the limit of 1,000"),
        ({**GOOD, "audio": "speech/cat0-0.wav", "duration": 75}, "duration", "75.0 s, over the limit of 60 s"),
        ({**GOOD, "audio": "speech/nothing.wav"}, "audio", "speech/nothing.wav: missing"),
        ({**GOOD, "audio": "../../etc/passwd"}, "audio", "leaves the root"),
        ({**GOOD, "caption": "typo"}, "caption", "not a field of a manifest row"),
        ({**GOOD, "class": 3}, "class", "expected a name"),
        ({k: v for k, v in GOOD.items() if k != "text"} | {"captions": [{"txt": "a"}]}, "captions[0]: txt", "not a "),
    ],
)
def test_a_bad_row_is_one_line_naming_the_file_line_and_field(tmp_path, row, field, problem):
    write_data(tmp_path)
    manifest = write_jsonl(tmp_path / "m.jsonl", [GOOD, GOOD | {"image": "photos/dog0.jpg", "class": "dog"}, row])
    source = get_source("manifest", load_preset("manifest", {"manifest": {"file": str(manifest)}}), None)
    with pytest.raises(UserError) as error:
        source.index()
    message = str(error.value)
    assert message.startswith(f"{manifest}:3: {field}: ") and problem in message and "\n" not in message


def test_rows_that_disagree_or_overflow_are_one_line(tmp_path):
    write_data(tmp_path)

    def problem(rows: list, **settings) -> str:
        manifest = write_jsonl(tmp_path / "m.jsonl", rows) if isinstance(rows, list) else rows
        preset = load_preset("manifest", {"manifest": {"file": str(manifest), **settings}})
        with pytest.raises(UserError) as error:
            get_source("manifest", preset, None).index()
        assert "\n" not in str(error.value)
        return str(error.value)

    m = tmp_path / "m.jsonl"
    assert problem([GOOD, GOOD | {"split": "test"}]) == (
        f"{m}:2: split: 'test' for photos/cat0.jpg, which {m}:1 gives 'train' (an image has one split)"
    )
    no_class = {k: v for k, v in GOOD.items() if k != "class"} | {"image": "photos/dog0.jpg"}
    assert problem([GOOD, no_class]).startswith(f"{m}:2: class: missing, while {m}:1 names one")
    assert (
        problem([GOOD] * 3, max_rows=2)
        == f"{m}: more than 2 rows (the limit manifest.max_rows; raise it for a larger set)"
    )
    assert problem([GOOD | {"captions": ["a"] * 101, "text": None}]).startswith(f"{m}:1: text: a row with a captions")
    assert "over the limit of 100" in problem(
        [{k: v for k, v in GOOD.items() if k != "text"} | {"captions": ["a"] * 101}]
    )
    m.write_text(json.dumps(GOOD) + "\n{not json\n")
    assert problem(m).startswith(f"{m}:2: not JSON")
    m.write_text(json.dumps(GOOD | {"text": "x" * (1 << 20)}) + "\n")
    assert problem(m) == f"{m}:1: longer than 1 MB; one JSON object a line"
    csv = tmp_path / "m.csv"
    csv.write_text("image,split,colour\nphotos/cat0.jpg,train,red\n")
    assert problem(csv).startswith(f"{csv}:1: unknown column 'colour'; the columns are image, split, class")
    csv.write_text('image,split,text\nphotos/cat0.jpg,train,"a cat"\nphotos/cat1.jpg,test\n')
    assert problem(csv) == f"{csv}:3: 2 cells, the header names 3 columns"
    other = tmp_path / "m.txt"
    other.write_text("")
    assert "cannot tell JSONL from CSV by its suffix" in problem(other)
    long_audio = tmp_path / "speech" / "long.wav"
    write_tone(long_audio, 200.0, 3.0)
    assert problem([GOOD | {"audio": "speech/long.wav"}], max_audio_seconds=2) == (
        f"{m}:1: audio: 3.0 s, over the limit of 2 s"
    )
