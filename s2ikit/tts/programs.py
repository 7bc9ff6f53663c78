"""Running a TTS engine's command-line program (espeak-ng, flite) for one utterance.

Each utterance runs in a fresh process: the engines keep state between utterances (espeak-ng's pitch flutter,
for one), so a fresh process is what makes the audio a function of the text and settings alone. The text
goes through a file, never the command line, so a caption that starts with "-" is not read as an option.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import soundfile as sf

from s2ikit.utils.errors import SampleError

TIMEOUT_S = 120  # one caption; a hung engine becomes a failed sample, not a stuck run


def find_program(name: str) -> str | None:
    return shutil.which(name)


def program_output(argv: list[str]) -> str:
    """stdout + stderr of a short query such as `--version` ("" when the program fails)."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout + done.stderr


def digest_files(paths: Iterable[Path]) -> str:
    """sha256 over the files' bytes in the order given: the voice data that shapes the audio."""
    sha = hashlib.sha256()
    for path in paths:
        sha.update(path.name.encode() + b"\0")
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                sha.update(block)
    return sha.hexdigest()[:16]


def speak_to_wav(argv: list[str], text: str, what: str) -> tuple[np.ndarray, int]:
    """Run `argv` with {text} and {wav} replaced by a text file holding `text` and the WAV file to write.

    Returns (mono float32 in [-1, 1], sample rate).
    """
    with tempfile.TemporaryDirectory(prefix="s2ikit-tts-") as folder:
        text_path, wav_path = Path(folder) / "text.txt", Path(folder) / "speech.wav"
        text_path.write_text(text + "\n", encoding="utf-8")
        command = [a.replace("{text}", str(text_path)).replace("{wav}", str(wav_path)) for a in argv]
        try:
            done = subprocess.run(command, capture_output=True, timeout=TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            raise SampleError(f"{what} took over {TIMEOUT_S} s for {text!r}") from None
        if done.returncode != 0 or not wav_path.is_file():
            message = done.stderr.decode(errors="replace").strip().splitlines()
            raise SampleError(f"{what} failed (exit {done.returncode}): {message[-1] if message else 'no output'}")
        data = wav_path.read_bytes()
    return read_wav(data, what, text)


def read_wav(data: bytes, what: str, text: str) -> tuple[np.ndarray, int]:
    """The first channel of a WAV file's bytes as float32 in [-1, 1], and its rate (SampleError if empty)."""
    audio, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    if audio.shape[0] == 0:
        raise SampleError(f"{what} produced no audio for {text!r}")
    return np.ascontiguousarray(audio[:, 0]), int(rate)
