import librosa
import numpy as np
import pytest
import soundfile as sf
from threadpoolctl import threadpool_limits

from s2ikit.audio.codec import decode_flac, encode_flac, from_int16, load_audio, to_int16
from s2ikit.audio.features import log_mel
from s2ikit.config import FeatureConfig
from s2ikit.utils.errors import SampleError


def s2igan_recipe(y: np.ndarray) -> np.ndarray:
    """S2IGAN's data_processing/Audio_to_mel.py, computed directly with librosa."""
    sr = 22050
    ws, st = int(sr * 0.001 * 25), int(sr * 0.001 * 10)
    feat = librosa.feature.melspectrogram(y=y, sr=sr, n_mels=40, n_fft=ws, hop_length=st)
    feat = np.log(feat + 1e-6)
    feat = (feat - feat.mean(axis=1)[:, np.newaxis]) / (feat.std(axis=1) + 1e-16)[:, np.newaxis]
    return np.swapaxes(feat, 0, 1).astype("float32")


def chirp(seconds: float = 1.5, sr: int = 22050) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * (200 + 900 * t) * t) + 0.01 * np.cos(2 * np.pi * 3000 * t)).astype(np.float32)


def test_log_mel_equals_s2igan_recipe():
    y = chirp()
    ours = log_mel(y, FeatureConfig())
    expected = s2igan_recipe(y)
    assert ours.shape == expected.shape == (1 + len(y) // 220, 40)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-5)


def test_log_mel_is_normalised_per_bin_and_float16_option():
    feats = log_mel(chirp(), FeatureConfig(dtype="float16"))
    assert feats.dtype == np.float16
    np.testing.assert_allclose(feats.astype(np.float32).mean(axis=0), 0, atol=2e-3)
    np.testing.assert_allclose(feats.astype(np.float32).std(axis=0), 1, atol=2e-3)


def test_log_mel_bytes_do_not_depend_on_the_blas_thread_count():
    # prepare computes features in worker processes (one thread) or in its own process (all cores); on some
    # CPUs OpenBLAS sums a product differently with two threads, which made the shards differ
    audio = np.random.default_rng(0).standard_normal(22050 * 3).astype(np.float32)
    with threadpool_limits(limits=1, user_api="blas"):
        one = log_mel(audio, FeatureConfig())
    with threadpool_limits(limits=2, user_api="blas"):
        two = log_mel(audio, FeatureConfig())
    assert one.tobytes() == two.tobytes()


def test_log_mel_rejects_empty_audio():
    with pytest.raises(SampleError, match="non-empty"):
        log_mel(np.zeros(0, dtype=np.float32), FeatureConfig())


def test_flac_round_trip_is_exact():
    pcm = to_int16(chirp())
    back, sr = decode_flac(encode_flac(pcm, 22050))
    assert sr == 22050
    np.testing.assert_array_equal(back, pcm)
    np.testing.assert_array_equal(to_int16(from_int16(pcm)), pcm)


def test_load_audio_resamples_16k_to_feature_rate(tmp_path):
    import soundfile as sf

    sr = 16000
    t = np.arange(sr) / sr
    sf.write(tmp_path / "a.wav", (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), sr)
    y = load_audio(tmp_path / "a.wav", 22050)
    assert len(y) == 22050
    spectrum = np.abs(np.fft.rfft(y))
    assert abs(np.argmax(spectrum) * 22050 / len(y) - 440) < 2  # the tone keeps its pitch


def test_load_audio_reports_truncated_file(tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt ")
    with pytest.raises(SampleError, match="broken.wav"):
        load_audio(bad, 22050)


def test_utterances_too_short_for_the_speech_encoder_are_refused(tmp_path):
    from s2ikit.audio.features import MIN_FRAMES, min_duration
    from s2ikit.audio.speech import wav_log_mel
    from s2ikit.models.speech_encoder import SpeechEncoder
    from s2ikit.utils.errors import UserError

    config = FeatureConfig()
    assert MIN_FRAMES == SpeechEncoder(n_mels=40, embed_dim=16).min_frames
    shortest = round(min_duration(config) * config.sample_rate)
    assert log_mel(chirp(1.0)[:shortest], config).shape[0] == MIN_FRAMES
    with pytest.raises(SampleError, match="utterance too short: 0.150 s gives 15 frames, .* at least 16"):
        log_mel(chirp(1.0)[: shortest - 1], config)
    wav = tmp_path / "short.wav"
    sf.write(wav, chirp(1.0, 16000)[:1600], 16000)
    with pytest.raises(UserError, match=rf"^{wav}: too short \(0.100 s\)"):
        wav_log_mel(wav, config)  # what `s2ikit generate --wav` shows as one line
