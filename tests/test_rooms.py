"""tts.rooms: captions heard in a synthetic room (RT60, direct-to-reverberant ratio), seeded, recorded per
caption, off by default."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_ctx, output_files, run
from test_voices_prepare import captions, needs_engines, several

from s2ikit.audio.rooms import impulse_response, reverberate
from s2ikit.config import load_preset
from s2ikit.utils.errors import UserError

RATE = 16000


def test_the_impulse_response_decays_by_its_rt60_and_keeps_its_drr():
    h = impulse_response(RATE, rt60=0.4, drr_db=6.0, seed=1)
    tail = h[1:]
    assert h[0] == 1.0 and 10 * np.log10(1.0 / np.sum(tail**2)) == pytest.approx(6.0)
    # Schroeder's backward integral: the energy still to come falls by 60 dB over the RT60
    energy = np.cumsum(tail[::-1] ** 2)[::-1]
    decay_db = 10 * np.log10(energy / energy[0])
    at = np.searchsorted(-decay_db, 30)  # -30 dB, doubled (T30), as room acousticians measure it
    assert 2 * at / RATE == pytest.approx(0.4, rel=0.1)
    assert np.array_equal(h, impulse_response(RATE, 0.4, 6.0, seed=1))
    assert not np.array_equal(h, impulse_response(RATE, 0.4, 6.0, seed=2))


def test_a_room_smears_speech_in_time_and_dry_is_untouched():
    t = np.arange(RATE) / RATE
    burst = (np.sin(2 * np.pi * 300 * t) * (t < 0.2)).astype(np.float32)  # 0.2 s of tone, then silence
    wet = reverberate(burst, RATE, 0.5, 3.0, seed=0)
    assert wet.size > burst.size and np.abs(wet).max() == pytest.approx(np.abs(burst).max(), rel=1e-5)
    after = slice(int(0.3 * RATE), int(0.4 * RATE))  # 0.1-0.2 s after the tone stopped: the room still rings
    assert np.sqrt(np.mean(wet[after] ** 2)) > 0.01 and not burst[after].any()
    assert reverberate(burst, RATE, 0.0, 3.0, seed=0) is burst


@needs_engines
def test_prepared_captions_record_their_room_and_rerun_the_same(tmp_path):
    rooms = {"rooms": "0.0,0.4", "room_drrs": "3.0,9.0"}
    first, again = tmp_path / "a", tmp_path / "b"
    assert run(make_ctx(first, tmp_path / "cache", **several(**rooms))).finalized
    found = captions(first)
    assert {c.get("room_rt60", 0.0) for c in found} == {0.0, 0.4}
    assert {c["room_drr_db"] for c in found if "room_rt60" in c} <= {3.0, 9.0}
    run(make_ctx(again, tmp_path / "cache", **several(**rooms)))
    assert output_files(again) == output_files(first)


def test_rooms_without_several_voices_or_out_of_range_are_one_line():
    with pytest.raises(UserError, match=r"tts\.rooms: needs tts\.voices"):
        load_preset("paper", {"tts": {"rooms": "0.0,0.5"}})
    with pytest.raises(UserError, match=r"tts\.rooms: entry 3\.0 is outside"):
        load_preset("shapes", {"tts": {"rooms": "0.0,3.0"}})
