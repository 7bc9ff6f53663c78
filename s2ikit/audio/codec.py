"""Waveform I/O: read any file soundfile knows, resample with soxr (via librosa), store as 16-bit FLAC.

Audio is quantised to 16 bits once, before features are computed, so the features in a shard are exactly
the features of the FLAC stored beside them.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf

from s2ikit.audio.features import MIN_FRAMES, min_duration
from s2ikit.config import FeatureConfig
from s2ikit.utils.errors import SampleError

# The floor every reader of recordings applies: MIN_FRAMES of log-mel with the default features. Features with
# a longer hop need more; log_mel checks the frames themselves.
MIN_SPEECH_SECONDS = min_duration(FeatureConfig())


def to_int16(audio: np.ndarray) -> np.ndarray:
    return (np.clip(audio, -1.0, 1.0) * 32767.0).round().astype(np.int16)


def from_int16(pcm: np.ndarray) -> np.ndarray:
    return pcm.astype(np.float32) / 32767.0


def resample(audio: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    if orig_sr == target_sr:
        return audio.astype(np.float32, copy=False)
    return librosa.resample(audio.astype(np.float32), orig_sr=orig_sr, target_sr=target_sr, res_type="soxr_hq")


def load_audio(
    path: str | Path,
    target_sr: int,
    min_seconds: float = MIN_SPEECH_SECONDS,
    max_seconds: float | None = None,
    max_values: int | None = None,
) -> np.ndarray:
    """A mono float32 waveform at `target_sr`; unreadable, empty, truncated, too short (under `min_seconds`) or
    too long files (over `max_seconds`, or over `max_values` samples of all channels together) raise SampleError
    naming the file. The bounds are judged from the header, before any sample is decoded."""
    if Path(path).suffix.lower() == ".wav":
        missing = _wav_bytes_missing(Path(path))
        if missing:
            raise SampleError(f"{path}: truncated WAV ({missing} bytes of audio missing)")
    try:
        if max_seconds is not None:
            info = sf.info(str(path))
            if info.frames > max_seconds * info.samplerate:
                raise SampleError(
                    f"{path}: too long ({info.frames / info.samplerate:.0f} s); one request takes up to "
                    f"{max_seconds:.0f} s of speech"
                )
            if max_values is not None and info.frames * info.channels > max_values:
                raise SampleError(
                    f"{path}: too much audio to decode ({info.channels} channel(s) of {info.frames} samples); one "
                    f"request takes up to {max_values} samples of all channels together"
                )
        audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as e:
        raise SampleError(f"{path}: unreadable audio ({e})") from None
    if audio.shape[0] == 0:
        raise SampleError(f"{path}: audio file holds no samples")
    check_finite(audio, str(path))
    if audio.shape[0] < min_seconds * sr:
        raise SampleError(
            f"{path}: too short ({audio.shape[0] / sr:.3f} s); an utterance needs at least {min_seconds:.2f} s "
            f"to give the speech encoder its {MIN_FRAMES} frames"
        )
    return resample(audio.mean(axis=1), sr, target_sr)


def check_finite(audio: np.ndarray, name: str) -> None:
    """SampleError naming `name` when a sample is NaN or infinite (a float file or array no microphone made)."""
    if not np.isfinite(audio).all():
        raise SampleError(f"{name}: holds NaN or infinite samples; not a recording")


def encode_flac(pcm: np.ndarray, sample_rate: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, pcm, sample_rate, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def decode_flac(data: bytes) -> tuple[np.ndarray, int]:
    """int16 samples and their rate."""
    pcm, sr = sf.read(io.BytesIO(data), dtype="int16")
    return pcm, sr


def _wav_bytes_missing(path: Path) -> int:
    """How many bytes the WAV's data chunk declares beyond the end of the file (0 when whole or not a WAV).
    libsndfile reads a WAV that was cut short without complaint (it stops where the bytes stop), so a clipped
    sentence would otherwise pass as a shorter one."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return 0  # not plain RIFF/WAVE (RF64, ...): libsndfile judges it
            size = os.fstat(f.fileno()).st_size
            while len(chunk := f.read(8)) == 8:
                length = int.from_bytes(chunk[4:], "little")
                if chunk[:4] == b"data":
                    return max(0, length - (size - f.tell()))
                f.seek(length + (length & 1), os.SEEK_CUR)  # chunks are padded to even sizes
    except OSError:
        pass  # load_audio names unreadable files
    return 0
