"""What one inference request may ask for: the same bounds in `s2ikit generate`, `SpeechToImage` and the demo.

Together they keep the worst request they allow under 2 GB of memory (tests/test_requests.py measures it); a
request past one is refused in one line naming the bound, before the model draws anything.
"""

from __future__ import annotations

MAX_TEXT_CHARS = 300  # characters of one typed sentence: captions are one sentence, under 200 characters
MAX_AUDIO_SECONDS = 60.0  # seconds of one recording (or of a sentence once spoken): captions last a few seconds
# samples of all channels of one decoded file: a minute of 48 kHz stereo (what a browser records; 23 MB of
# float32), so neither a high rate nor many channels makes a short file huge in memory
MAX_AUDIO_VALUES = int(MAX_AUDIO_SECONDS) * 48_000 * 2
MAX_IMAGES = 16  # images per input (`--num`, `num=`, the demo's slider): each its own noise vector z
MAX_INPUTS = 16  # inputs per request (wav files, waveforms and sentences together)
GRID_COLUMNS = 8  # images per row of `generate`'s grid: an input's images wrap onto further rows
