"""Log-mel features, S2IGAN's recipe by default (data_processing/Audio_to_mel.py).

mel = melspectrogram(y, sr, n_fft, hop, win, hann, power 2, centred); x = log(mel + 1e-6); then, per utterance,
each mel bin is shifted to zero mean and scaled to unit variance over time. Stored as (T, n_mels).
"""

from __future__ import annotations

import functools

import librosa
import numpy as np
from threadpoolctl import ThreadpoolController

from s2ikit.config import FeatureConfig
from s2ikit.utils.errors import SampleError

# The speech encoder's two unpadded convolutions (kernel 6, stride 2) need 6 + 2 * 5 frames of log-mel.
MIN_FRAMES = 16


def _padding(config: FeatureConfig) -> int:
    return 2 * (config.n_fft // 2) if config.center else 0  # librosa pads n_fft // 2 on each side when centred


def frames(num_samples: int, config: FeatureConfig) -> int:
    """Log-mel frames of a waveform of `num_samples` samples (librosa's framing)."""
    padded = num_samples + _padding(config)
    return 0 if padded < config.n_fft else 1 + (padded - config.n_fft) // config.hop_length


def min_duration(config: FeatureConfig) -> float:
    """Seconds of the shortest utterance that gives MIN_FRAMES frames: 0.15 s with the defaults (hop 220 at
    22,050 Hz)."""
    return ((MIN_FRAMES - 1) * config.hop_length + config.n_fft - _padding(config)) / config.sample_rate


# S2IGAN divides by (std + 1e-16); keep its epsilon so features match its code to float precision.
_STD_EPS = 1e-16


@functools.lru_cache(maxsize=8)
def _mel_basis(config: FeatureConfig) -> np.ndarray:
    # librosa.feature.melspectrogram rebuilds this matrix on every call, which costs more than the STFT itself.
    return librosa.filters.mel(sr=config.sample_rate, n_fft=config.n_fft, n_mels=config.n_mels)


@functools.cache
def _blas() -> ThreadpoolController:
    return ThreadpoolController()  # inspecting the loaded libraries is the slow part: once per process


def log_mel(audio: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """(T, n_mels) log-mel of a mono waveform already at `config.sample_rate`.

    Same arithmetic as librosa.feature.melspectrogram (|STFT|^power, then the Slaney mel filterbank).
    """
    if audio.ndim != 1 or audio.size == 0:
        raise SampleError(f"expected a non-empty mono waveform, got shape {audio.shape}")
    if frames(audio.size, config) < MIN_FRAMES:
        raise SampleError(
            f"utterance too short: {audio.size / config.sample_rate:.3f} s gives {frames(audio.size, config)} "
            f"frames, the speech encoder needs at least {MIN_FRAMES} ({min_duration(config):.2f} s)"
        )
    spec = librosa.stft(
        audio.astype(np.float32, copy=False),
        n_fft=config.n_fft,
        hop_length=config.hop_length,
        win_length=config.win_length,
        window=config.window,
        center=config.center,
    )
    # one BLAS thread: on some CPUs OpenBLAS's multi-threaded sgemm sums in another order, and the features must
    # not depend on a process's thread count (prepare's worker processes run single-threaded)
    with _blas().limit(limits=1, user_api="blas"):
        mel = _mel_basis(config) @ (np.abs(spec) ** config.power)
    feat = np.log(mel + config.log_offset)
    if config.normalize == "utterance":
        feat = (feat - feat.mean(axis=1, keepdims=True)) / (feat.std(axis=1, keepdims=True) + _STD_EPS)
    elif config.normalize != "none":
        raise ValueError(f"features.normalize must be 'utterance' or 'none', not {config.normalize!r}")
    return np.ascontiguousarray(feat.T, dtype=np.dtype(config.dtype))
