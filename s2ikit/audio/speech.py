"""The one road from a recording to the speech encoder's input, with the one check of what counts as speech.

`s2ikit generate`, `SpeechToImage`, the demo and sentences spoken by the TTS all come through here: a waveform at
any rate and channel count -> the feature rate -> 16-bit (as the shards store speech) -> log-mel. Audio that
cannot give a picture is one line naming it: unreadable, no samples, not finite, too long, silent, too short.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from s2ikit.audio.codec import check_finite, from_int16, load_audio, resample, to_int16
from s2ikit.audio.features import log_mel
from s2ikit.audio.limits import MAX_AUDIO_SECONDS, MAX_AUDIO_VALUES
from s2ikit.config import FeatureConfig
from s2ikit.utils.errors import SampleError, UserError

# Below this peak level a recording holds no speech an encoder could use (its per-utterance normalised log-mel
# would be amplified noise): a muted or unplugged microphone gives digital silence, or the 16-bit rounding noise
# of one (-60 dBFS is about 33 of 32,767).
SILENCE_DBFS = -60.0


def speech_log_mel(audio: np.ndarray, sample_rate: int, features: FeatureConfig, name: str) -> np.ndarray:
    """A waveform (samples,) or (samples, channels), float in [-1, 1] or int16, at `sample_rate` Hz -> (T, n_mels)
    log-mel; or a UserError naming `name` when it cannot give a picture."""
    whole = isinstance(sample_rate, (int, np.integer, float)) and not isinstance(sample_rate, bool)
    if not whole or not np.isfinite(sample_rate) or sample_rate != int(sample_rate) or sample_rate <= 0:
        raise UserError(f"{name}: sample_rate={sample_rate!r}: must be a whole number of Hz above 0")
    sample_rate = int(sample_rate)
    audio = np.asarray(audio)
    if audio.ndim not in (1, 2) or audio.size == 0 or not np.issubdtype(audio.dtype, np.number):
        raise UserError(f"{name}: expected a non-empty mono or (samples, channels) waveform, got shape {audio.shape}")
    seconds = audio.shape[0] / sample_rate
    if seconds > MAX_AUDIO_SECONDS or audio.size > MAX_AUDIO_VALUES:  # judged before any copy is made
        raise UserError(
            f"{name}: too long ({seconds:.0f} s, {audio.size} samples); one request takes up to "
            f"{MAX_AUDIO_SECONDS:.0f} s of speech ({MAX_AUDIO_VALUES} samples of all channels)"
        )
    if audio.dtype == np.int16:
        audio = from_int16(audio)
    if audio.ndim == 2:
        audio = audio.mean(axis=1)  # as load_audio mixes channels
    try:
        check_finite(audio, name)
    except SampleError as e:
        raise UserError(str(e)) from None
    pcm = from_int16(to_int16(resample(audio.astype(np.float32, copy=False), sample_rate, features.sample_rate)))
    peak = float(np.abs(pcm).max())
    if peak == 0 or 20 * np.log10(peak) < SILENCE_DBFS:
        shown = "no signal at all" if peak == 0 else f"peak {20 * np.log10(peak):.0f} dBFS"
        raise UserError(f"{name}: silent ({shown}); is the microphone muted or the file empty?")
    try:
        return log_mel(pcm, features)  # refuses audio shorter than the speech encoder's minimum
    except SampleError as e:
        raise UserError(f"{name}: {e}") from None


def wav_log_mel(path: str | Path, features: FeatureConfig, name: str | None = None) -> np.ndarray:
    """A sound file of any rate and channel count -> log-mel; messages call it `name` (its path by default)."""
    name = str(path) if name is None else name
    try:
        audio = load_audio(path, features.sample_rate, max_seconds=MAX_AUDIO_SECONDS, max_values=MAX_AUDIO_VALUES)
    except SampleError as e:
        raise UserError(str(e).replace(str(path), name)) from None
    return speech_log_mel(audio, features.sample_rate, features, name)


def duration(frames: int, features: FeatureConfig) -> float:
    """Seconds of `frames` log-mel frames (a centred STFT puts a frame on every hop, both ends included)."""
    return (frames - int(features.center)) * features.hop_length / features.sample_rate
