"""tts.formant_shifts: each caption's formants moved after synthesis (Praat's Change gender), its pitch and
length kept, the same bytes on every run, recorded per caption in the shards, the speech cache reused."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_ctx, output_files, run
from test_voices_prepare import captions, count_synthesis, needs_engines, several

from s2ikit.config import load_preset
from s2ikit.tts import SynthesisParams, load_voice
from s2ikit.utils.errors import UserError

parselmouth = pytest.importorskip("parselmouth", reason="praat-parselmouth (the voices extra) is not installed")
from s2ikit.tts.formants import shift_formants  # noqa: E402

SHIFTS = (1.0, 1.25)


def median_f0(audio: np.ndarray, rate: int) -> float:
    pitch = parselmouth.Sound(audio.astype(np.float64), sampling_frequency=rate).to_pitch(pitch_floor=60)
    f0 = pitch.selected_array["frequency"]
    return float(np.median(f0[f0 > 0]))


def f2_f3(audio: np.ndarray, rate: int, ratio: float) -> np.ndarray:
    """Median second and third formant (Hz). The analysis ceiling follows the vocal tract, as Praat advises (5 kHz
    for this male voice, x the ratio it was shifted by)."""
    sound = parselmouth.Sound(audio.astype(np.float64), sampling_frequency=rate)
    track = sound.to_formant_burg(max_number_of_formants=5, maximum_formant=5000 * ratio)
    return np.array([np.nanmedian([track.get_value_at_time(n, t) for t in track.ts()]) for n in (2, 3)])


@pytest.fixture(scope="module")
def kal():
    voice = load_voice("flite:kal16")
    return voice.synthesize("a small red circle on a yellow background", SynthesisParams()), voice.sample_rate


@needs_engines
def test_formants_move_and_pitch_and_length_stay(kal):
    audio, rate = kal
    up = shift_formants(audio, rate, 1.25, seed=3)
    down = shift_formants(audio, rate, 0.8, seed=3)
    assert abs(up.size - audio.size) < 0.02 * audio.size
    before = f2_f3(audio, rate, 1.0)
    assert f2_f3(up, rate, 1.25) / before == pytest.approx([1.25, 1.25], rel=0.08)
    assert f2_f3(down, rate, 0.8) / before == pytest.approx([0.8, 0.8], rel=0.08)
    assert median_f0(up, rate) == pytest.approx(median_f0(audio, rate), rel=0.06)


@needs_engines
def test_the_same_inputs_give_the_same_samples(kal):
    audio, rate = kal
    first = shift_formants(audio, rate, 1.25, seed=3)
    shift_formants(audio, rate, 0.9, seed=8)  # Praat's generator moved on in between
    assert np.array_equal(shift_formants(audio, rate, 1.25, seed=3), first)
    assert shift_formants(audio, rate, 1.0, seed=3) is audio


def test_a_ratio_out_of_range_is_refused():
    with pytest.raises(ValueError, match="outside"):
        shift_formants(np.zeros(1600, np.float32), 16000, 2.5, seed=0)


@pytest.fixture(scope="module")
def shifted(tmp_path_factory):
    out, cache = tmp_path_factory.mktemp("formants"), tmp_path_factory.mktemp("formants-cache")
    assert run(make_ctx(out, cache, **several(formant_shifts="1.0,1.25"))).finalized
    return out, cache


@needs_engines
def test_each_caption_records_its_shift(shifted):
    found = captions(shifted[0])
    assert len(found) == 16
    assert {c.get("formant_shift", 1.0) for c in found} == set(SHIFTS)
    assert all("formant_shift" not in c for c in found if c.get("formant_shift", 1.0) == 1.0)


@needs_engines
def test_a_cold_rerun_gives_the_same_shards_and_shifts_reuse_the_cache(shifted, tmp_path, monkeypatch):
    again = tmp_path / "again"
    run(make_ctx(again, tmp_path / "cache", **several(formant_shifts="1.0,1.25")))
    assert output_files(again) == output_files(shifted[0])
    synthesized = count_synthesis(monkeypatch)
    plain = tmp_path / "plain"  # the same voices without shifts: every utterance is already in the cache
    run(make_ctx(plain, shifted[1], **several()))
    assert synthesized == []
    moved = {(c["key"], c["index"]) for c in captions(shifted[0]) if "formant_shift" in c}
    flac = {(c["key"], c["index"]): c for c in captions(plain)}
    assert moved and all((key, index) in flac for key, index in moved)


def test_shifts_without_several_voices_or_out_of_range_are_one_line():
    with pytest.raises(UserError, match=r"tts\.formant_shifts: needs tts\.voices"):
        load_preset("paper", {"tts": {"formant_shifts": "1.0,1.2"}})
    with pytest.raises(UserError, match=r"tts\.formant_shifts: entry 3\.0 is outside"):
        load_preset("shapes", {"tts": {"formant_shifts": "1.0,3.0"}})
