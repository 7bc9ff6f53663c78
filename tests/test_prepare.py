"""The preparation DAG: contents, rerun, resume after crashes, --force, settings changes, partitions, workers."""

from __future__ import annotations

import gc
import io
import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import time

import numpy as np
import pytest
import webdataset as wds
from conftest import make_ctx, output_files, run

from s2ikit.audio.codec import decode_flac, from_int16
from s2ikit.audio.features import log_mel
from s2ikit.config import FeatureConfig
from s2ikit.data.records import read_index
from s2ikit.utils import atomic
from s2ikit.utils.errors import SampleError, UserError


def test_shards_hold_every_sample_and_caption(reference):
    index = read_index(reference / "index.jsonl")
    dataset = json.loads((reference / "dataset.json").read_text())
    assert dataset["splits"]["train"]["samples"] == 8 and dataset["splits"]["test"]["samples"] == 8
    assert dataset["splits"]["train"]["captions"] == 16 and dataset["failures"] == 0
    assert json.loads((reference / "shards/train/sizes.json").read_text()) == {
        "shard-000000.tar": 3,
        "shard-000001.tar": 3,
        "shard-000002.tar": 2,
    }
    by_key = {r.key: r for r in index}
    seen = set()
    for path in sorted((reference / "shards").rglob("*.tar")):
        with tarfile.open(path) as tar:  # plain tarfile reads them
            names = tar.getnames()
            members = {name: tar.extractfile(name).read() for name in names}
        for name in names:
            if name.endswith(".json"):
                meta = json.loads(members[name])
                record = by_key[meta["key"]]
                seen.add(meta["key"])
                assert meta["split"] == record.split and meta["class_id"] == record.class_id
                assert [c["text"] for c in meta["captions"]] == [c.text for c in record.captions]
                assert meta["attributes"]["colour"] == record.attributes["colour"]
                for c in meta["captions"]:
                    pcm, sr = decode_flac(members[f"{meta['key']}.c{c['index']:02d}.flac"])
                    mel = np.load(io.BytesIO(members[f"{meta['key']}.c{c['index']:02d}.npy"]))
                    assert sr == 22050 and mel.shape == (c["frames"], 40)
                    # the stored features are exactly those of the stored audio
                    np.testing.assert_allclose(mel, log_mel(from_int16(pcm), FeatureConfig()), atol=1e-5)
                assert members[f"{meta['key']}.png"].startswith(b"\x89PNG")
    assert seen == set(by_key)


def test_webdataset_reads_the_shards(reference):
    urls = sorted(str(p) for p in (reference / "shards/test").glob("*.tar"))
    samples = list(wds.WebDataset(urls, shardshuffle=False).decode("pil"))
    assert len(samples) == 8
    assert samples[0]["png"].size == (32, 32)
    assert samples[0]["c00.npy"].shape[1] == 40


def test_rerun_does_nothing(reference, tts_cache):
    before = {p: p.stat().st_mtime_ns for p in reference.rglob("*") if p.is_file()}
    report = run(make_ctx(reference, tts_cache))
    assert report.finalized and not any(report.ran.values())
    after = {p: p.stat().st_mtime_ns for p in before}
    assert before == after


class SimulatedCrash(BaseException):
    """Not an Exception: nothing in s2ikit may catch it, as nothing catches a kill."""


def crash_after(monkeypatch, n: int) -> None:
    calls = {"n": 0}
    real = atomic._replace

    def replace(src, dst):
        calls["n"] += 1
        if calls["n"] == n:
            raise SimulatedCrash(f"crash before writing {dst}")
        real(src, dst)

    monkeypatch.setattr(atomic, "_replace", replace)


def count_writes(monkeypatch, ctx) -> list[str]:
    written = []
    real = atomic._replace
    monkeypatch.setattr(atomic, "_replace", lambda src, dst: (written.append(str(dst)), real(src, dst)))
    run(ctx)
    monkeypatch.setattr(atomic, "_replace", real)
    return written


def test_resume_after_a_crash_in_every_step_is_byte_identical(reference, tts_cache, tmp_path, monkeypatch):
    expected = output_files(reference)
    writes = count_writes(monkeypatch, make_ctx(tmp_path / "count", tts_cache))
    # one crash point at the first write of each kind of output, plus the very last write
    points: dict[int, str] = {}
    seen_kinds = set()
    for i, path in enumerate(writes, 1):
        kind = path.rsplit("/", 2)[-2] + ("/record" if path.endswith(".json") else "")
        if kind not in seen_kinds:
            seen_kinds.add(kind)
            points[i] = kind
    points[len(writes)] = "last write"
    assert {"speech", "speech/record", "features", "images", "shards/record", "train", "test"} <= set(points.values())
    for n, kind in sorted(points.items()):
        out = tmp_path / f"crash-{n}"
        crash_after(monkeypatch, n)
        with pytest.raises(SimulatedCrash):
            run(make_ctx(out, tts_cache))
        monkeypatch.setattr(atomic, "_replace", os.replace)
        report = run(make_ctx(out, tts_cache))
        assert report.finalized, kind
        assert output_files(out) == expected, f"resume after a crash in {kind} differs"


def test_killed_process_resumes_with_a_cold_cache(reference, tmp_path):
    """A real SIGKILL while speech is being synthesized (new cache, so synthesis is slow enough to interrupt)."""
    out, cache = tmp_path / "killed", tmp_path / "cold-cache"
    script = (
        "import sys; sys.path.insert(0, 'tests'); from conftest import make_ctx, run; from pathlib import Path; "
        f"run(make_ctx(Path({str(out)!r}), Path({str(cache)!r})))"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=os.path.dirname(os.path.dirname(__file__)))
    deadline = time.time() + 60
    while time.time() < deadline and not list((out / "work" / "speech").glob("*.json")):
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert list((out / "work" / "speech").glob("*.json")), "the run never reached the speech step"
    assert not (out / "dataset.json").exists(), "killed too late: the run had already finished"
    report = run(make_ctx(out, cache))
    assert report.finalized and report.ran["speech"] >= 1
    assert output_files(out) == output_files(reference)


def test_force_redoes_one_step_and_identical_output_keeps_downstream(reference, tts_cache, tmp_path):
    out = tmp_path / "force"
    run(make_ctx(out, tts_cache))
    report = run(make_ctx(out, tts_cache), force=frozenset({"features"}))
    assert report.ran == {"speech": 0, "features": 6, "images": 0, "shards": 0}
    assert output_files(out) == output_files(reference)
    with pytest.raises(UserError, match="--force featurez: unknown step"):
        run(make_ctx(out, tts_cache), force=frozenset({"featurez"}))


def test_changing_a_setting_redoes_what_it_reaches(reference, tts_cache, tmp_path):
    out = tmp_path / "change"
    run(make_ctx(out, tts_cache))
    report = run(make_ctx(out, tts_cache, features={"dtype": "float16"}))
    assert report.ran == {"speech": 0, "features": 6, "images": 0, "shards": 6}
    with tarfile.open(out / "shards/test/shard-000000.tar") as tar:
        name = next(n for n in tar.getnames() if n.endswith(".npy"))
        assert np.load(io.BytesIO(tar.extractfile(name).read())).dtype == np.float16


def test_partitions_then_finalize_equal_a_single_run(reference, tts_cache, tmp_path):
    out = tmp_path / "parts"
    first = run(make_ctx(out, tts_cache), num_partitions=2, partition=0)
    assert not first.finalized and first.units == 3 and len(first.missing) == 3
    with pytest.raises(UserError, match="3 of 6 units are not done yet"):
        run(make_ctx(out, tts_cache), finalize_only=True)
    run(make_ctx(out, tts_cache), num_partitions=2, partition=1)
    assert run(make_ctx(out, tts_cache), finalize_only=True).finalized
    assert output_files(out) == output_files(reference)


def test_two_workers_give_the_same_shards(reference, tts_cache, tmp_path):
    out = tmp_path / "workers"
    report = run(make_ctx(out, tts_cache), workers=2)
    assert report.finalized and report.ran["shards"] == 6
    assert output_files(out) == output_files(reference)


def test_bad_samples_are_recorded_and_skipped(tts_cache, tmp_path, monkeypatch):
    from s2ikit.data.sources import shapes
    from s2ikit.tts.piper_backend import PiperBackend

    real_index, real_render, real_synth = shapes.ShapesSource.index, shapes.render, PiperBackend.synthesize

    def index(self):
        records = real_index(self)
        first = records[0]
        blank = type(first.captions[0])(text="   ")
        records[0] = type(first)(**{**first.__dict__, "captions": (blank,) + first.captions[1:]})
        return records

    def render(attributes, size):
        if attributes["colour"] == "blue" and attributes["shape"] == "square" and attributes["size"] == "large":
            raise SampleError("unreadable image")
        return real_render(attributes, size)

    def synthesize(self, text, params):
        if "circle and it is" in text:
            raise RuntimeError("voice exploded")
        return real_synth(self, text, params)

    monkeypatch.setattr(shapes.ShapesSource, "index", index)
    monkeypatch.setattr(shapes, "render", render)
    monkeypatch.setattr(PiperBackend, "synthesize", synthesize)
    out = tmp_path / "bad"
    report = run(make_ctx(out, tmp_path / "cache2", tts={"length_scales": "1.05"}))
    failures = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    reasons = {(f["step"], f["error"].split(":")[0]) for f in failures}
    assert ("speech", "empty caption") in reasons
    assert ("speech", "TTS failed") in reasons
    assert ("images", "unreadable image") in reasons
    assert report.dataset["failures"] == len(failures)
    assert report.dataset["splits"]["train"]["samples"] + report.dataset["splits"]["test"]["samples"] == 14


def test_out_pointing_at_a_file_is_one_line(tts_cache, tmp_path):
    existing = tmp_path / "notes.txt"
    existing.write_text("keep me")
    with pytest.raises(UserError, match=rf"^--out {existing}: is a file, not a folder$"):
        run(make_ctx(existing, tts_cache))
    with pytest.raises(UserError, match=rf"^--out {existing}/data: {existing} is a file, not a folder$"):
        run(make_ctx(existing / "data", tts_cache))
    assert existing.read_text() == "keep me"


@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")  # "write to closed file" on cleanup
def test_a_full_disk_stops_in_one_line_and_the_rerun_completes(reference, tts_cache, tmp_path, monkeypatch):
    """The disk fills while a shard is being written: the error names the shard and the free space, the shards
    written before are untouched, nothing half-written remains, and after freeing space a rerun finishes."""
    import errno

    out = tmp_path / "full"
    run(make_ctx(out, tts_cache))
    before = output_files(out)
    written = []

    def addfile(self, tarinfo, fileobj=None):
        written.append(tarinfo.name)
        if len(written) > 7:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_addfile(self, tarinfo, fileobj)

    real_addfile = tarfile.TarFile.addfile
    monkeypatch.setattr(tarfile.TarFile, "addfile", addfile)
    with pytest.raises(UserError) as error:
        run(make_ctx(out, tts_cache), force=frozenset({"shards"}))
    gc.collect()  # a half-written tar must not fail again when it is collected
    message = str(error.value)
    assert message.startswith(f"{out}/shards/test/shard-000000.tar: no space left on device (")
    assert re.search(r" free on .+\); nothing was replaced$", message) and "\n" not in message
    assert output_files(out) == before
    assert not list(out.rglob(".*.tmp-*"))
    monkeypatch.setattr(tarfile.TarFile, "addfile", real_addfile)
    report = run(make_ctx(out, tts_cache))
    assert report.finalized and not any(report.ran.values())  # the old shards were never replaced
    assert output_files(out) == output_files(reference)
