"""Waveform I/O: read any file soundfile knows, resample with soxr (via librosa), store as 16-bit FLAC.

Audio is quantised to 16 bits once, before features are computed, so the features in a shard are exactly
the features of the FLAC stored beside them.
"""

from __future__ import annotations

import io
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf

from s2ikit.utils.errors import SampleError


def to_int16(audio: np.ndarray) -> np.ndarray:
    return (np.clip(audio, -1.0, 1.0) * 32767.0).round().astype(np.int16)


def from_int16(pcm: np.ndarray) -> np.ndarray:
    return pcm.astype(np.float32) / 32767.0


def resample(audio: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    if orig_sr == target_sr:
        return audio.astype(np.float32, copy=False)
    return librosa.resample(audio.astype(np.float32), orig_sr=orig_sr, target_sr=target_sr, res_type="soxr_hq")


def load_audio(path: str | Path, target_sr: int) -> np.ndarray:
    """A mono float32 waveform at `target_sr`; unreadable, empty or truncated files raise SampleError."""
    try:
        audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as e:
        raise SampleError(f"{path}: unreadable audio ({e})") from None
    if audio.shape[0] == 0:
        raise SampleError(f"{path}: audio file holds no samples")
    return resample(audio.mean(axis=1), sr, target_sr)


def encode_flac(pcm: np.ndarray, sample_rate: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, pcm, sample_rate, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def decode_flac(data: bytes) -> tuple[np.ndarray, int]:
    """int16 samples and their rate."""
    pcm, sr = sf.read(io.BytesIO(data), dtype="int16")
    return pcm, sr
