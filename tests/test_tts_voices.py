"""The TTS engines besides Piper (espeak-ng, flite, festival), voices named ENGINE:VOICE, and their cache keys.

Each engine's tests skip, saying so, where `make voices` has not installed it.
"""

from __future__ import annotations

import librosa
import numpy as np
import pytest

from s2ikit.tts import (
    SynthesisParams,
    available_backends,
    installed_voices,
    load_voice,
    parse_voice,
    voice_config,
)
from s2ikit.tts.cache import SpeechCache
from s2ikit.utils.atomic import fingerprint
from s2ikit.utils.errors import UserError

TEXT = "a large green triangle"
# engine -> (a male voice, a female voice, expected sample rate of the male one)
ENGINES = {
    "espeak-ng": ("en-us", "en-us+f3", 22050),
    "flite": ("kal16", "slt", 16000),
    "festival": ("kal_diphone", "cmu_us_slt_arctic_hts", 16000),
}


def needs(engine: str):
    problem = available_backends().get(engine)
    return pytest.mark.skipif(problem is not None, reason=f"{engine} is not installed here ({problem})")


def engine_params():
    return [pytest.param(e, marks=needs(e)) for e in ENGINES]


def median_f0(audio: np.ndarray, rate: int) -> float:
    """The utterance's median f0 over its loud frames (the voiced ones, mostly), in Hz."""
    f0 = librosa.yin(audio.astype(np.float64), fmin=70, fmax=400, sr=rate, frame_length=1024, hop_length=256)
    loud = librosa.feature.rms(y=audio, frame_length=1024, hop_length=256)[0]
    n = min(len(f0), len(loud))
    return float(np.median(f0[:n][loud[:n] > 0.3 * loud.max()]))


@pytest.mark.parametrize("engine", engine_params())
def test_each_engine_speaks_a_caption_at_its_rate(engine):
    male, _, rate = ENGINES[engine]
    voice = load_voice(f"{engine}:{male}")
    audio = voice.synthesize(TEXT, SynthesisParams())
    assert voice.sample_rate == rate and audio.dtype == np.float32 and audio.ndim == 1
    assert 0.8 < len(audio) / rate < 4  # four words
    assert 0.1 < np.abs(audio).max() <= 1.0  # speech, not silence or clipping garbage


@pytest.mark.parametrize("engine", engine_params())
def test_same_inputs_give_the_same_bytes_whatever_came_before(engine):
    male, female, _ = ENGINES[engine]
    voice = load_voice(f"{engine}:{male}")
    first = voice.synthesize(TEXT, SynthesisParams())
    load_voice(f"{engine}:{female}").synthesize("something else entirely", SynthesisParams(length_scale=1.2))
    voice.synthesize("a small red circle", SynthesisParams(length_scale=0.9))
    assert first.tobytes() == voice.synthesize(TEXT, SynthesisParams()).tobytes()


@pytest.mark.parametrize("engine", engine_params())
def test_voices_of_one_engine_sound_different_and_have_different_ids(engine):
    male, female, _ = ENGINES[engine]
    a, b = load_voice(f"{engine}:{male}"), load_voice(f"{engine}:{female}")
    assert a.voice_id != b.voice_id and a.voice_id.startswith(f"{engine}:{male}:")
    low, high = a.synthesize(TEXT, SynthesisParams()), b.synthesize(TEXT, SynthesisParams())
    assert median_f0(high, b.sample_rate) > 1.3 * median_f0(low, a.sample_rate)  # the female voice is higher


@pytest.mark.parametrize("engine", engine_params())
def test_speaking_rate_changes_duration(engine):
    voice = load_voice(f"{engine}:{ENGINES[engine][0]}")
    slow = voice.synthesize(TEXT, SynthesisParams(length_scale=1.3))
    fast = voice.synthesize(TEXT, SynthesisParams(length_scale=0.8))
    assert len(slow) > 1.3 * len(fast)


@pytest.mark.parametrize("engine", engine_params())
def test_pitch_moves_the_voice_up_and_down(engine):
    voice = load_voice(f"{engine}:{ENGINES[engine][0]}")
    f0 = {p: median_f0(voice.synthesize(TEXT, SynthesisParams(pitch=p)), voice.sample_rate) for p in (0.8, 1.0, 1.25)}
    assert f0[0.8] < 0.92 * f0[1.0] and f0[1.25] > 1.1 * f0[1.0], f0


@needs("espeak-ng")
def test_espeak_variants_and_accents_are_voices():
    ids = {load_voice(f"espeak-ng:{v}").voice_id for v in ("en-us", "en-us+m3", "en-gb-scotland", "en-029")}
    assert len(ids) == 4
    audio = {v: load_voice(f"espeak-ng:{v}").synthesize(TEXT, SynthesisParams()) for v in ("en-us", "en-us+m3")}
    assert audio["en-us"].tobytes() != audio["en-us+m3"].tobytes()


@needs("flite")
def test_a_control_the_voice_lacks_is_refused_not_ignored():
    rms = load_voice("flite:rms")
    assert "pitch" not in rms.controls
    with pytest.raises(ValueError, match="rms has no control for pitch=1.2"):
        rms.synthesize(TEXT, SynthesisParams(pitch=1.2))
    with pytest.raises(ValueError, match="noise_scale"):
        load_voice("flite:slt").synthesize(TEXT, SynthesisParams(noise_scale=0.5))


@needs("espeak-ng")
def test_a_caption_that_looks_like_an_option_is_spoken():
    voice = load_voice("espeak-ng:en-us")
    assert len(voice.synthesize("-v small red circle", SynthesisParams())) > 0.5 * voice.sample_rate


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("flite:nobody", "tts.voice nobody: no such Flite voice here .*installed: kal.*make voices"),
        ("espeak-ng:xx-yy", "espeak-ng has no English voice 'xx-yy'"),
        ("espeak-ng:en-us+nobody", "espeak-ng has no variant 'nobody'"),
        ("festival:nobody", "no such Festival voice here"),
    ],
)
def test_unknown_voice_is_one_line_naming_it(spec, message):
    engine = spec.partition(":")[0]
    if available_backends()[engine] is not None:
        pytest.skip(f"{engine} is not installed here")
    with pytest.raises(UserError, match=message) as err:
        load_voice(spec)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("engine", list(ENGINES))
def test_missing_engine_is_one_line_naming_make_voices(engine, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no program can be found
    with pytest.raises(
        UserError, match=f"TTS backend '{engine}' is not usable: .*`make voices` \\(apt-get install"
    ) as err:
        load_voice(f"{engine}:{ENGINES[engine][0]}")
    assert "\n" not in str(err.value)
    assert available_backends()[engine] is not None


def test_voice_names_parse_into_engine_and_voice():
    assert parse_voice("espeak-ng:en-us+f3") == ("espeak-ng", "en-us+f3")
    assert parse_voice("piper:/voices/a:b.onnx") == ("piper", "/voices/a:b.onnx")  # only the first colon splits
    config = voice_config("flite:slt")
    assert (config.backend, config.voice) == ("flite", "slt")
    with pytest.raises(UserError, match="expected ENGINE:VOICE"):
        parse_voice("slt")
    with pytest.raises(UserError, match="unknown TTS engine 'mimic'.*espeak-ng"):
        parse_voice("mimic:slt")


def test_installed_voices_name_loadable_voices_of_both_sexes():
    voices = installed_voices()
    if not any(v.spec.startswith(("espeak-ng:", "flite:", "festival:")) for v in voices):
        pytest.skip("no engine besides piper is installed here (make voices)")
    assert {"female", "male"} <= {v.sex for v in voices}
    specs = [v.spec for v in voices]
    assert len(specs) == len(set(specs))
    for spec in specs[:: max(1, len(specs) // 12)]:  # a spread of them, not all 100+ espeak-ng variants
        parse_voice(spec)
        assert load_voice(spec).voice_id.startswith(spec + ":")


def test_cache_key_differs_by_voice_and_every_prosody_control(tmp_path):
    cache = SpeechCache(tmp_path)
    base = cache.key("flite:slt:2.2:abc", TEXT, SynthesisParams())
    others = [
        cache.key("flite:awb:2.2:def", TEXT, SynthesisParams()),
        cache.key("flite:slt:2.3:abc", TEXT, SynthesisParams()),  # another engine version
        cache.key("flite:slt:2.2:abc", TEXT, SynthesisParams(length_scale=1.1)),
        cache.key("flite:slt:2.2:abc", TEXT, SynthesisParams(pitch=1.1)),
        cache.key("flite:slt:2.2:abc", TEXT, SynthesisParams(noise_scale=0.3)),
        cache.key("flite:slt:2.2:abc", TEXT, SynthesisParams(noise_w=0.3)),
    ]
    assert len({base, *others}) == 7


def test_cache_entries_made_before_the_pitch_control_keep_their_keys(tmp_path):
    params = SynthesisParams(length_scale=1.1)
    before = fingerprint(
        {"voice": "v", "text": TEXT, "params": {"length_scale": 1.1, "noise_scale": 0.0, "noise_w": 0.0}}
    )
    assert SpeechCache(tmp_path).key("v", TEXT, params) == before


@pytest.mark.parametrize("engine", [p for p in engine_params() if p.values[0] != "festival"])  # festival: slow
def test_reruns_are_served_from_the_cache_by_voice(engine, tmp_path):
    cache = SpeechCache(tmp_path)
    male, female, _ = ENGINES[engine]
    voices = [load_voice(f"{engine}:{v}") for v in (male, female)]
    for voice in voices:
        audio = voice.synthesize(TEXT, SynthesisParams())
        cache.put(
            cache.key(voice.voice_id, TEXT, SynthesisParams()), (audio * 32767).astype(np.int16), voice.sample_rate
        )
    got = [cache.get(cache.key(v.voice_id, TEXT, SynthesisParams())) for v in voices]
    assert got[0] is not None and got[1] is not None and got[0][0].tobytes() != got[1][0].tobytes()
    assert [g[1] for g in got] == [v.sample_rate for v in voices]


@needs("festival")
def test_festival_keeps_one_interpreter_that_survives_odd_text_and_a_crash():
    voice = load_voice("festival:kal_diphone")
    first = voice.synthesize(TEXT, SynthesisParams())
    process = voice.session.process
    quoted = voice.synthesize('say "large" \\ (circle)', SynthesisParams())  # Scheme's string syntax escaped
    assert len(quoted) > 0.5 * voice.sample_rate and voice.session.process is process  # no new start-up
    process.kill()
    process.wait()
    assert voice.synthesize(TEXT, SynthesisParams()).tobytes() == first.tobytes()  # started again, same samples
    voice.session.close()
    assert process.poll() is not None and voice.session.process is None
