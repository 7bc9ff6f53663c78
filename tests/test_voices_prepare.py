"""Captions spoken by several TTS voices: the seeded draw of voice, rate and pitch, who spoke recorded per
caption in the shards and passed to batches, the speech cache keyed on the voice, `s2ikit voices`."""

from __future__ import annotations

import pytest
from conftest import make_ctx, output_files, run
from typer.testing import CliRunner

from s2ikit.cli import app
from s2ikit.config import LoaderConfig, load_preset
from s2ikit.data.loader import make_loader
from s2ikit.data.shards import decode_members, read_shard
from s2ikit.tts import available_backends, installed_voices
from s2ikit.utils.errors import UserError

VOICES = ("espeak-ng:en-us", "espeak-ng:en-us+f3", "flite:slt")
PITCHES = (0.9, 1.1)
MISSING = [engine for engine in ("espeak-ng", "flite") if available_backends().get(engine) is not None]
needs_engines = pytest.mark.skipif(
    bool(MISSING), reason=f"{' and '.join(MISSING)} not installed (`make voices` installs them)"
)


def several(voices=VOICES, **tts: str) -> dict:
    """A tiny shapes preset (8 images, 16 captions) spoken by `voices` at two rates and two pitches."""
    settings = {"voices": ",".join(voices), "pitches": ",".join(map(str, PITCHES)), "length_scales": "0.9,1.1"}
    return {"shapes": {"images_per_class": 1}, "tts": {**settings, **tts}}


def captions(out) -> list[dict]:
    """Every caption's JSON record in the data set's shards, with its sample's key."""
    found = []
    for shard in sorted((out / "shards").rglob("*.tar")):
        for sample in read_shard(shard):
            found += [{"key": sample["__key__"], **c} for c in decode_members(sample)["meta"]["captions"]]
    return found


def count_synthesis(monkeypatch) -> list[str]:
    """Records the voice of every utterance the TTS engines speak (cache misses)."""
    from s2ikit.tts.espeak_backend import EspeakBackend
    from s2ikit.tts.flite_backend import FliteBackend

    spoken: list[str] = []
    for backend in (EspeakBackend, FliteBackend):
        real = backend.synthesize

        def synthesize(self, text, params, real=real):
            spoken.append(f"{self.name}:{self.voice}")
            return real(self, text, params)

        monkeypatch.setattr(backend, "synthesize", synthesize)
    return spoken


@pytest.fixture(scope="module")
def spoken(tmp_path_factory):
    """(data set, its TTS cache): the tiny shapes set spoken by three voices."""
    out, cache = tmp_path_factory.mktemp("voices"), tmp_path_factory.mktemp("voices-cache")
    assert run(make_ctx(out, cache, **several())).finalized
    return out, cache


@needs_engines
def test_each_caption_names_who_spoke_it_and_every_voice_speaks(spoken):
    found = captions(spoken[0])
    assert len(found) == 16
    assert all(c["voice"] in VOICES and c["pitch"] in PITCHES and c["length_scale"] in (0.9, 1.1) for c in found)
    assert {c["voice"] for c in found} == set(VOICES)
    assert {c["pitch"] for c in found} == set(PITCHES)


@needs_engines
def test_batches_carry_the_voice(spoken):
    batches = list(make_loader(spoken[0], LoaderConfig(split="train", mode="test", batch_size=4)))
    by_caption = {(c["key"], c["index"]): c["voice"] for c in captions(spoken[0])}
    rows = [(k, int(i)) for b in batches for k, i in zip(b["key"], b["caption_index"])]
    assert len(rows) == 16
    assert [by_caption[row] for row in rows] == [v for b in batches for v in b["voice"]]


@needs_engines
def test_the_draw_is_deterministic(spoken, tmp_path):
    again = tmp_path / "again"  # a cold cache: every caption spoken afresh
    run(make_ctx(again, tmp_path / "cache", **several()))
    assert output_files(again) == output_files(spoken[0])


@needs_engines
def test_a_rerun_synthesizes_nothing(spoken, tmp_path, monkeypatch):
    out, cache = spoken
    synthesized = count_synthesis(monkeypatch)
    assert not any(run(make_ctx(out, cache, **several())).ran.values())
    elsewhere = tmp_path / "elsewhere"  # a new data set, the same cache: every caption is a cache hit
    run(make_ctx(elsewhere, cache, **several()))
    assert synthesized == []
    assert output_files(elsewhere) == output_files(out)


@needs_engines
def test_changing_the_voices_speaks_again(spoken, tmp_path, monkeypatch):
    out = tmp_path / "changed"
    run(make_ctx(out, spoken[1], **several()))
    synthesized = count_synthesis(monkeypatch)
    report = run(make_ctx(out, spoken[1], **several(voices=("flite:kal16", "espeak-ng:en-gb"))))
    assert report.ran["speech"] > 0 and report.ran["shards"] > 0
    assert {c["voice"] for c in captions(out)} == {"flite:kal16", "espeak-ng:en-gb"}
    assert set(synthesized) == {"flite:kal16", "espeak-ng:en-gb"}
    synthesized.clear()
    report = run(make_ctx(out, spoken[1], **several(voices=("flite:kal16", "espeak-ng:en-gb"), pitches="1.25")))
    assert report.ran["speech"] > 0 and synthesized
    assert {c["pitch"] for c in captions(out)} == {1.25}


@needs_engines
def test_a_voice_without_a_control_speaks_at_its_own(tmp_path):
    out = tmp_path / "rms"  # flite's rms has no pitch control: its captions are spoken, at pitch 1
    report = run(make_ctx(out, tmp_path / "cache", **several(voices=("flite:rms",))))
    assert report.dataset["failures"] == 0
    assert {c["pitch"] for c in captions(out)} == {1.0}


@needs_engines
def test_a_single_voice_records_no_speaker(tmp_path):
    out = tmp_path / "single"  # the voice is the data set's, in dataset.json; the shards are as before voices
    run(
        make_ctx(
            out, tmp_path / "cache", shapes={"images_per_class": 1}, tts={"backend": "espeak-ng", "voice": "en-us"}
        )
    )
    assert all(set(c) == {"key", "index", "text", "frames"} for c in captions(out))


def test_a_bad_voice_is_one_line_naming_it(tmp_path):
    with pytest.raises(UserError, match=r"tts\.voices: entry 'flite' is not ENGINE:VOICE"):
        load_preset("shapes", {"tts": {"voices": "espeak-ng:en-us,flite"}})
    with pytest.raises(UserError, match=r"tts\.voices: voice 'nobody:x': unknown TTS engine 'nobody'"):
        run(make_ctx(tmp_path / "bad", tmp_path / "cache", **several(voices=("nobody:x",))))


def test_voices_command_lists_them_and_says_how_to_use_them():
    runner = CliRunner()
    result = runner.invoke(app, ["voices"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert all(voice.spec in result.output for voice in installed_voices())
    help_text = runner.invoke(app, ["voices", "--help"], env={"COLUMNS": "200"}).output
    assert "tts.voices=" in help_text and "[tts]" in help_text
