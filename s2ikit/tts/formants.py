"""A longer or shorter vocal tract for any voice: the formants of synthesized speech moved by a ratio.

A speaker's vocal tract length sets where the formants lie (adult women's are about 15-20% higher than men's);
pitch is a separate control. The few recorded English voices that install offline are nearly all male, so
moving their formants is the way to let a model hear other vocal tracts from them. Praat's "Change gender"
(Boersma & Weenink) does it with PSOLA: the sound is resampled by the ratio (every formant moves) and
overlap-added back to its own pitch and duration, so only the spectral envelope moves.
"""

from __future__ import annotations

import numpy as np

from s2ikit.utils.errors import UserError

PITCH_FLOOR_HZ = 75.0  # Praat's own defaults for the pitch analysis PSOLA places its periods by
PITCH_CEILING_HZ = 600.0
MIN_RATIO, MAX_RATIO = 0.5, 2.0  # beyond this range the result stops sounding like speech


def _praat():  # noqa: ANN202 - parselmouth is an optional dependency, imported where it is used
    try:
        import parselmouth
    except ImportError:
        raise UserError(
            "tts.formant_shifts needs Praat's Python package: pip install praat-parselmouth"
            " (the voices extra, which make installs in .venv)"
        ) from None
    return parselmouth


def shift_formants(audio: np.ndarray, sample_rate: int, ratio: float, seed: int) -> np.ndarray:
    """`audio` (float mono at `sample_rate`) with its formants x `ratio`, its pitch and duration kept.

    Praat's PSOLA draws random numbers; seeding them with `seed` gives the same samples for the same inputs
    (a resumed preparation is then byte-identical to an uninterrupted one)."""
    if not MIN_RATIO <= ratio <= MAX_RATIO:
        raise ValueError(f"formant shift ratio {ratio} outside [{MIN_RATIO}, {MAX_RATIO}]")
    if ratio == 1.0:
        return audio
    parselmouth = _praat()
    sound = parselmouth.Sound(np.asarray(audio, dtype=np.float64), sampling_frequency=float(sample_rate))
    # Praat's generator is one per process; preparation workers are processes, so this seed is theirs alone.
    parselmouth.praat.run(f"random_initializeWithSeedUnsafelyButPredictably ({int(seed) % 2**31})")
    # new pitch median 0 = keep the pitch; pitch range factor 1 and duration factor 1 = keep the intonation
    shifted = parselmouth.praat.call(
        sound, "Change gender", PITCH_FLOOR_HZ, PITCH_CEILING_HZ, float(ratio), 0.0, 1.0, 1.0
    )
    out = np.asarray(shifted.values[0], dtype=np.float32)
    return np.clip(out, -1.0, 1.0)


def available() -> bool:
    """Whether Praat's Python package is installed (`s2ikit doctor`)."""
    try:
        _praat()
    except UserError:
        return False
    return True
