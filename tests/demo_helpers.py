"""What the demo tests share: a free port, spoken wav files, an exported model and the pictures `s2ikit generate`
draws."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image
from typer.testing import CliRunner

from s2ikit.cli import app

CELL = 128  # px of one picture in `generate`'s grid (s2ikit.core.grid's default)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_warble(path: Path, seconds: float = 1.5, rate: int = 44100, channels: int = 2) -> Path:
    """A speech-like sound (a tone swept and amplitude-modulated) at a rate and channel count the model's
    features do not use, so the demo must resample and mix it down as `generate` does."""
    t = np.arange(int(rate * seconds)) / rate
    wave = 0.3 * np.sin(2 * np.pi * (180 + 120 * t) * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2
    sf.write(path, np.stack([wave * (0.6 + 0.4 * c) for c in range(channels)], axis=1), rate, subtype="PCM_16")
    return path


def write_speech(path: Path, sentence: str) -> Path:
    """`sentence` spoken by the default Piper voice, as a 16-bit WAV at the voice's own rate."""
    from s2ikit.config import TTSConfig
    from s2ikit.tts import SynthesisParams, load_backend

    voice = load_backend(TTSConfig())
    sf.write(path, voice.synthesize(sentence, SynthesisParams()), voice.sample_rate, subtype="PCM_16")
    return path


def generated_pictures(run: Path, out: Path, num: int, seed: int, *, wav: Path | None = None, text: str = ""):
    """The `num` pictures `s2ikit generate` draws for one input, as RGB arrays of CELL x CELL px."""
    args = ["generate", str(run), "-n", str(num), "--seed", str(seed), "-o", str(out)]
    args += ["--wav", str(wav)] if wav is not None else ["--text", text]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    with Image.open(out) as grid:
        return [np.asarray(grid.convert("RGB").crop((k * CELL, 0, (k + 1) * CELL, CELL))) for k in range(num)]


def export_model(run: Path, out: Path) -> Path:
    """The folder `s2ikit export RUN OUT` writes (safetensors weights, config.json, model card)."""
    result = CliRunner().invoke(app, ["export", str(run), str(out)])
    assert result.exit_code == 0, result.output
    return out


def as_cell(path_or_image) -> np.ndarray:
    """A picture as the demo serves it (its own size), scaled to a grid cell the way `generate` scales it."""
    image = path_or_image if isinstance(path_or_image, Image.Image) else Image.open(path_or_image)
    return np.asarray(image.convert("RGB").resize((CELL, CELL), Image.Resampling.NEAREST))
