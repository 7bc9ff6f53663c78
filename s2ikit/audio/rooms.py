"""A room around a voice: speech convolved with a synthetic room impulse response.

A person speaking into a laptop's microphone is heard through the room: the direct sound, then a reverberant
tail that decays by 60 dB in the room's RT60 (0.3-0.6 s for offices and living rooms). Unlike a microphone's
frequency response, which the utterance normalisation of the log-mel removes (a per-bin constant), the tail
smears each frame into the next ones, so a model trained on dry speech must learn it from examples.

The impulse response is Polack's statistical model: the direct impulse, a short gap, then Gaussian noise under
an exponential envelope; its energy against the direct sound's is the direct-to-reverberant ratio (DRR; 0-12 dB
for a speaker between a metre and a hand's width from the microphone).
"""

from __future__ import annotations

import numpy as np

GAP_S = 0.002  # from the direct sound to the first reflections
MAX_RT60_S = 2.0  # a cathedral; beyond, the tail is longer than most captions


def impulse_response(rate: int, rt60: float, drr_db: float, seed: int) -> np.ndarray:
    """The room's impulse response at `rate`: 1 (direct), `GAP_S` of silence, a seeded noise tail decaying by
    60 dB in `rt60` seconds whose energy is `drr_db` below the direct sound's."""
    if not 0 < rt60 <= MAX_RT60_S:
        raise ValueError(f"RT60 {rt60} s outside (0, {MAX_RT60_S}]")
    t = np.arange(int(rt60 * rate)) / rate
    tail = np.random.default_rng(seed).standard_normal(t.size) * np.exp(-6.9078 * t / rt60)  # ln(1000)
    tail *= np.sqrt(10 ** (-drr_db / 10) / np.sum(tail**2))
    return np.concatenate([[1.0], np.zeros(int(GAP_S * rate)), tail])


def reverberate(audio: np.ndarray, rate: int, rt60: float, drr_db: float, seed: int) -> np.ndarray:
    """`audio` as heard in the room, as long as the dry audio plus its reverberant tail, peak-normalised to the
    dry audio's peak (a room changes the sound, not the recording level)."""
    if rt60 == 0:
        return audio
    from scipy.signal import fftconvolve  # scipy comes with librosa; imported here, where it is used

    wet = fftconvolve(np.asarray(audio, dtype=np.float64), impulse_response(rate, rt60, drr_db, seed))
    peak = np.abs(wet).max()
    scale = np.abs(audio).max() / peak if peak > 0 else 0.0
    return (wet * scale).astype(np.float32)
