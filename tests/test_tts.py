import numpy as np
import pytest

from s2ikit.config import TTSConfig
from s2ikit.tts import SynthesisParams, available_backends, load_backend
from s2ikit.tts.cache import SpeechCache
from s2ikit.utils.errors import UserError


@pytest.fixture(scope="module")
def piper():
    return load_backend(TTSConfig())


def test_piper_speaks_at_22050(piper):
    audio = piper.synthesize("a small red circle", SynthesisParams())
    assert piper.sample_rate == 22050
    assert audio.dtype == np.float32 and 0.5 < len(audio) / 22050 < 5
    assert np.abs(audio).max() > 0.5  # normalised speech, not silence


def test_piper_is_deterministic_with_zero_noise_whatever_came_before(piper):
    first = piper.synthesize("a large blue square", SynthesisParams())
    piper.synthesize("something else entirely", SynthesisParams(length_scale=1.1))
    again = piper.synthesize("a large blue square", SynthesisParams())
    np.testing.assert_array_equal(first, again)


def test_speaking_rate_changes_duration(piper):
    slow = piper.synthesize("a large blue square", SynthesisParams(length_scale=1.2))
    fast = piper.synthesize("a large blue square", SynthesisParams(length_scale=0.8))
    assert len(slow) > 1.3 * len(fast)


def test_cache_key_depends_on_text_voice_and_params(tmp_path):
    cache = SpeechCache(tmp_path)
    base = cache.key("v1", "hello", SynthesisParams())
    assert base == cache.key("v1", "hello", SynthesisParams())
    assert base != cache.key("v2", "hello", SynthesisParams())
    assert base != cache.key("v1", "hello!", SynthesisParams())
    assert base != cache.key("v1", "hello", SynthesisParams(length_scale=1.1))
    pcm = (np.arange(1000) % 200 - 100).astype(np.int16)
    assert cache.get(base) is None
    cache.put(base, pcm, 22050)
    got, sr = cache.get(base)
    np.testing.assert_array_equal(got, pcm)
    assert sr == 22050


def test_unknown_backend_is_a_clear_error():
    assert "piper" in available_backends()
    with pytest.raises(UserError, match="unknown TTS backend .*piper"):
        load_backend(TTSConfig(backend="espeak9000"))
