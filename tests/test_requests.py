"""What one inference request may ask for, the same in `s2ikit generate`, `SpeechToImage` and the demo: outputs
never land on inputs, each limit is one line before any work, bad text and audio are one line, and the worst
request the limits allow stays within 2 GB of memory."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from demo_helpers import write_warble
from PIL import Image
from typer.testing import CliRunner

from s2ikit.audio.limits import (
    GRID_COLUMNS,
    MAX_AUDIO_SECONDS,
    MAX_AUDIO_VALUES,
    MAX_IMAGES,
    MAX_INPUTS,
    MAX_TEXT_CHARS,
)
from s2ikit.cli import app
from s2ikit.core.speech_to_image import SpeechToImage
from s2ikit.utils.errors import UserError

runner = CliRunner()
CELL = 128  # px of one picture in generate's grid


def one_line_error(result, *words: str) -> None:
    """The command failed with one line naming the problem, and no traceback."""
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    for word in words:
        assert word in lines[0], (word, lines[0])


def generate(*args: str):
    return runner.invoke(app, ["generate", *map(str, args)])


@pytest.fixture
def wav(tmp_path):
    return write_warble(tmp_path / "mine.wav", rate=16000, channels=1)


def test_the_model_is_never_overwritten(gan_run, tmp_path):
    model = gan_run / "checkpoints" / "generator.pt"
    before = model.read_bytes()
    for extra in ([], ["--overwrite"]):
        one_line_error(generate(gan_run, "--text", "a red circle", "-o", model, *extra), f"-o {model}")
    assert model.read_bytes() == before


def test_the_recording_is_never_overwritten(gan_run, wav):
    before = wav.read_bytes()
    for extra in ([], ["--overwrite"]):
        one_line_error(generate(gan_run, "--wav", wav, "-o", wav, *extra), "is an input of this command")
    assert wav.read_bytes() == before


def test_an_existing_grid_is_replaced_only_with_overwrite(gan_run, wav, tmp_path):
    out = tmp_path / "grid.png"
    assert generate(gan_run, "--wav", wav, "-n", "2", "-o", out).exit_code == 0
    first = out.read_bytes()
    one_line_error(generate(gan_run, "--wav", wav, "-n", "2", "--seed", "1", "-o", out), "exists; --overwrite")
    assert out.read_bytes() == first
    result = generate(gan_run, "--wav", wav, "-n", "2", "--seed", "1", "-o", out, "--overwrite")
    assert result.exit_code == 0, result.output
    assert out.read_bytes() != first


def test_a_file_that_is_not_a_png_is_never_overwritten(gan_run, wav, tmp_path):
    notes = tmp_path / "notes.png"
    notes.write_text("my notes, not a picture")
    for extra in ([], ["--overwrite"]):
        one_line_error(generate(gan_run, "--wav", wav, "-o", notes, *extra), "exists and is not a PNG image")
    assert notes.read_text() == "my notes, not a picture"
    one_line_error(generate(gan_run, "--wav", wav, "-o", tmp_path / "grid.jpg"), "give a name ending in .png")
    assert not (tmp_path / "grid.jpg").exists()


def test_a_folder_or_a_read_only_folder_is_one_line(gan_run, wav, tmp_path):
    one_line_error(generate(gan_run, "--wav", wav, "-o", tmp_path), "is a folder")
    import s2ikit.core.grid as grid

    with pytest.MonkeyPatch.context() as patch:  # a folder this user may not write in, even as root
        patch.setattr(grid, "_may_write", lambda folder: False)
        one_line_error(generate(gan_run, "--wav", wav, "-o", tmp_path / "grid.png"), "permission denied")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who may write anywhere (root)")
        one_line_error(generate(gan_run, "--wav", wav, "-o", locked / "grid.png"), "permission denied")
        one_line_error(generate(gan_run, "--wav", wav, "-o", locked / "deeper" / "grid.png"), "permission denied")
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o755)


def test_a_write_that_fails_after_the_check_is_one_line(gan_run, wav, tmp_path, monkeypatch):
    import s2ikit.core.grid as grid

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(grid.Image.Image, "save", refuse)
    one_line_error(generate(gan_run, "--wav", wav, "-o", tmp_path / "grid.png"), "cannot write the grid")


@pytest.mark.parametrize(
    "args, words",
    [
        (["--text", "x" * 10_000], ["10000 characters", f"up to {MAX_TEXT_CHARS}"]),
        (["--text", "a red circle", "--num", "50000"], ["50000", f"from 1 to {MAX_IMAGES}"]),
        (["--text", "a red circle", "--num", "2000"], ["2000", f"from 1 to {MAX_IMAGES}"]),
        (["--text", "a red circle", "--num", "0"], ["num 0", f"from 1 to {MAX_IMAGES}"]),
        (["--text", "a"] * (MAX_INPUTS + 1), [f"{MAX_INPUTS + 1} inputs", f"up to {MAX_INPUTS}"]),
        (["--text", "..."], ["'...'", "no word to speak"]),
        (["--text", "a red\x00circle"], ["control character (U+0000)"]),
        (["--text", "   "], ["empty sentence"]),
    ],
)
def test_each_limit_and_bad_text_is_one_line_before_any_work(gan_run, tmp_path, args, words):
    out = tmp_path / "grid.png"
    one_line_error(generate(gan_run, *args, "-o", out), *words)
    assert not out.exists()


def test_audio_past_the_limits_or_not_finite_is_one_line(gan_run, tmp_path):
    long = tmp_path / "long.wav"
    sf.write(long, np.zeros(int(8000 * (MAX_AUDIO_SECONDS + 1)), np.int16), 8000)
    one_line_error(generate(gan_run, "--wav", long, "-o", tmp_path / "a.png"), "long.wav: too long (61 s)")
    wide = tmp_path / "wide.wav"  # a short file whose channels and rate would decode to a huge array
    sf.write(wide, np.zeros((MAX_AUDIO_VALUES // 16 + 1, 16), np.int16), 192000)
    one_line_error(generate(gan_run, "--wav", wide, "-o", tmp_path / "b.png"), "wide.wav: too much audio")
    nan = tmp_path / "nan.wav"
    wave = 0.3 * np.sin(np.arange(16000) / 10)
    wave[5000] = np.nan
    sf.write(nan, wave.astype(np.float32), 16000, subtype="FLOAT")
    one_line_error(generate(gan_run, "--wav", nan, "-o", tmp_path / "c.png"), "nan.wav: holds NaN or infinite")
    assert not any(tmp_path.glob("*.png"))


def test_the_python_api_has_the_same_limits(gan_run):
    pipe = SpeechToImage.from_pretrained(gan_run)
    wave = (0.3 * np.sin(np.arange(16000) / 10)).astype(np.float32)
    cases = [
        (dict(audio=wave, sample_rate=0), r"audio\[0\]: sample_rate=0: must be a whole number of Hz above 0"),
        (dict(audio=wave, sample_rate=-5), r"sample_rate=-5"),
        (dict(audio=np.where(np.arange(16000) == 9, np.inf, wave), sample_rate=16000), "holds NaN or infinite"),
        (dict(audio=np.zeros(int(16000 * (MAX_AUDIO_SECONDS + 1)), np.float32), sample_rate=16000), "too long"),
        (dict(text="y" * (MAX_TEXT_CHARS + 1)), f"{MAX_TEXT_CHARS + 1} characters"),
        (dict(text="\x00"), "control character"),
        (dict(text="?!"), "no word to speak"),
        (dict(text="a red circle", num=MAX_IMAGES + 1), f"from 1 to {MAX_IMAGES}"),
        (dict(text=["a"] * (MAX_INPUTS + 1)), f"{MAX_INPUTS + 1} inputs"),
    ]
    for kwargs, message in cases:
        with pytest.raises(UserError, match=message) as error:
            pipe(**kwargs)
        assert "\n" not in str(error.value)
    assert len(pipe(audio=wave, sample_rate=16000.0, num=1)) == 1  # a whole rate given as a float is that rate


def test_the_grid_wraps_each_input_onto_rows_of_its_own(gan_run, wav, tmp_path):
    out = tmp_path / "grid.png"
    num = GRID_COLUMNS + 3
    result = generate(gan_run, "--wav", wav, "--text", "a red circle", "-n", num, "-o", out)
    assert result.exit_code == 0, result.output
    with Image.open(out) as grid:
        array = np.asarray(grid.convert("RGB"))
    row_height = array.shape[0] // 4  # two inputs, two rows each
    assert array.shape[1] == GRID_COLUMNS * CELL and array.shape[0] == 4 * row_height
    blank = array[row_height : row_height + CELL, 3 * CELL :]  # the rest of the first input's second row
    assert (blank == 255).all()
    second = array[2 * row_height : 2 * row_height + CELL, :CELL]  # the second input starts a row
    assert not (second == 255).all()


def test_help_states_the_limits():
    result = runner.invoke(app, ["generate", "--help"], terminal_width=200)
    text = " ".join(result.output.split())
    for words in (f"{MAX_TEXT_CHARS} characters", f"{MAX_AUDIO_SECONDS:.0f} s", f"{MAX_IMAGES} images per input",
                  f"{MAX_INPUTS} inputs", f"after {GRID_COLUMNS}", "--overwrite"):  # fmt: skip
        assert words in text, words
    demo = " ".join(runner.invoke(app, ["demo", "--help"], terminal_width=200).output.split())
    assert f"{MAX_TEXT_CHARS} characters" in demo and f"up to {MAX_IMAGES} pictures" in demo


# The command in a fresh process, which then prints its own peak resident memory (KiB). VmHWM belongs to the
# process's address space, which exec makes anew; getrusage's ru_maxrss survives exec, so it would report the
# pytest process that forked it whenever that one is larger.
WORST = """
import re, sys
from pathlib import Path
from s2ikit.cli import app
try:
    app(sys.argv[1:])
finally:
    print("peak_kib", re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text()).group(1))
"""


def test_the_worst_request_the_limits_allow_stays_under_2_gb(gan_run, tmp_path):
    """MAX_INPUTS inputs, half of them the longest, widest recording a file may hold and half the longest sentence,
    MAX_IMAGES images each, through `generate` in a fresh process: its peak resident memory."""
    big = tmp_path / "big.wav"
    seconds = MAX_AUDIO_SECONDS
    rate = MAX_AUDIO_VALUES // 2 // int(seconds)  # stereo at the highest rate the limit allows for a minute
    t = np.arange(int(seconds * rate)) / rate
    wave = (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t)) * 16000).astype(np.int16)
    sf.write(big, np.stack([wave, wave], axis=1), rate)
    sentence = ("a large red circle on a light background beside a small blue square " * 5)[:MAX_TEXT_CHARS]
    args = ["generate", str(gan_run), "-n", str(MAX_IMAGES), "-o", str(tmp_path / "worst.png")]
    args += ["--wav", str(big)] * (MAX_INPUTS // 2) + ["--text", sentence] * (MAX_INPUTS - MAX_INPUTS // 2)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run([sys.executable, "-c", WORST, *args], capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 0, result.stderr + result.stdout
    peak_kib = int(result.stdout.split("peak_kib")[-1])
    print(f"worst request: peak RSS {peak_kib / 1024:.0f} MiB")
    assert peak_kib < 2 << 20, f"{peak_kib / 1024:.0f} MiB"
    with Image.open(tmp_path / "worst.png") as grid:
        assert grid.width == GRID_COLUMNS * CELL


def test_the_readme_states_the_same_limits():
    from pathlib import Path

    readme = " ".join((Path(__file__).parents[1] / "README.md").read_text().split())
    for words in (f"up to {MAX_TEXT_CHARS} characters", f"up to {MAX_AUDIO_SECONDS:.0f} s", f"1 to {MAX_IMAGES} images",
                  f"{MAX_INPUTS} inputs", f"wrapping after {GRID_COLUMNS}", "--overwrite"):  # fmt: skip
        assert words in readme, words
