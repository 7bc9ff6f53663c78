"""What the page says about audio it cannot use: unreadable, silent or too long, each as one sentence naming
the file. (Too short is judged on the log-mel itself, by backend.draw, for every kind of input.)

Audio is only ever decoded by soundfile (libsndfile), through s2ikit.audio.codec, never unpickled or executed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from s2ikit.audio.codec import load_audio
from s2ikit.utils.errors import SampleError, UserError

# Below this peak level a recording holds no speech: a muted or unplugged microphone gives digital silence, or
# the 16-bit rounding noise of one (-60 dBFS is about 33 of 32,767).
SILENCE_DBFS = -60.0
# Longest utterance accepted, in seconds: captions are a few seconds; this bounds one request's CPU time.
MAX_SECONDS = 60.0


def check_recording(path: str | Path, sample_rate: int, name: str) -> None:
    """Raise UserError when the audio at `path` (shown to the user as `name`) cannot give a picture."""
    try:
        audio = load_audio(path, sample_rate)
    except SampleError as e:
        raise UserError(str(e).replace(str(path), name)) from None
    seconds = audio.size / sample_rate
    if seconds > MAX_SECONDS:
        raise UserError(f"{name}: too long ({seconds:.0f} s); the demo takes up to {MAX_SECONDS:.0f} s of speech")
    peak = float(np.abs(audio).max())
    level = 20 * np.log10(peak) if peak > 0 else float("-inf")
    if level < SILENCE_DBFS:
        shown = "no signal at all" if peak == 0 else f"peak {level:.0f} dBFS"
        raise UserError(f"{name}: silent ({shown}); is the microphone muted or the file empty?")
