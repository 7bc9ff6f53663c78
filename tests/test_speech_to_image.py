"""`SpeechToImage`: the Python API gives `s2ikit generate`'s images, takes waveforms, and names bad audio in a line."""

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image
from typer.testing import CliRunner

from s2ikit.cli import app
from s2ikit.core.speech_to_image import SpeechToImage
from s2ikit.utils.errors import UserError

runner = CliRunner()
CELL = 128  # save_grid's cell: each 32 px image is scaled up 4x (nearest), so the grid holds it exactly


def write_speechlike(path, seconds=2.0, rate=16000):
    t = np.arange(int(rate * seconds)) / rate
    sf.write(path, (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32), rate)
    return path


def grid_cells(path, row: int, n: int, size: int) -> list[np.ndarray]:
    """The n images of a `generate` grid's row, back at the generator's size."""
    with Image.open(path) as grid:
        array = np.asarray(grid.convert("RGB"))
    top, step = row * (CELL + 37), CELL // size
    return [array[top : top + CELL : step, i * CELL : (i + 1) * CELL : step] for i in range(n)]


def test_the_pipeline_draws_what_generate_draws(gan_run, tmp_path):
    wav = write_speechlike(tmp_path / "me.wav")
    out = tmp_path / "grid.png"
    result = runner.invoke(app, ["generate", str(gan_run), "--wav", str(wav), "-n", "3", "-o", str(out)])
    assert result.exit_code == 0, result.output
    pipe = SpeechToImage.from_pretrained(gan_run).to("cpu")
    images = pipe(wav=wav, num=3, seed=0)
    assert [image.size for image in images] == [(32, 32)] * 3 and pipe.step == 2
    arrays = [np.asarray(image) for image in images]
    assert all(np.array_equal(a, b) for a, b in zip(arrays, grid_cells(out, 0, 3, 32)))
    # a waveform in memory (at its own rate, with two channels) is the same description as its file
    audio, rate = sf.read(wav, dtype="float32")
    stereo = pipe(audio=np.stack([audio, audio], axis=1), sample_rate=rate, num=3, seed=0)
    assert all(np.array_equal(a, np.asarray(b)) for a, b in zip(arrays, stereo))
    assert not np.array_equal(arrays[0], np.asarray(pipe(wav=wav, num=1, seed=1)[0]))  # another seed, another z


def test_inputs_keep_their_rows_so_batching_changes_nothing(gan_run, tmp_path):
    a, b = write_speechlike(tmp_path / "a.wav", 1.5), write_speechlike(tmp_path / "b.wav", 2.5)
    pipe = SpeechToImage.from_pretrained(gan_run)
    both, labels = pipe.generate(wav=[a, b], num=2, seed=3)
    assert both.shape == (2, 2, 3, 32, 32) and labels == ["a.wav", "b.wav"]
    alone, _ = pipe.generate(wav=a, num=2, seed=3)
    # row 0 gets the same z whether or not b comes along (batched arithmetic may differ in the last bits)
    assert torch.allclose(both[0], alone[0], atol=1e-5) and not torch.allclose(both[0], both[1], atol=1e-2)


def test_bf16_draws_nearly_the_fp32_pictures_and_bad_precision_is_one_line(gan_run, tmp_path):
    wav = write_speechlike(tmp_path / "me.wav")
    fp32, _ = SpeechToImage.from_pretrained(gan_run).generate(wav=wav, num=2, seed=0)
    pipe = SpeechToImage.from_pretrained(gan_run, precision="bf16")
    bf16, _ = pipe.generate(wav=wav, num=2, seed=0)
    assert bf16.dtype == torch.float32 and "bf16" in repr(pipe)
    # bfloat16 keeps 8 bits of mantissa: close to fp32's pictures, but computed differently
    assert (bf16 - fp32).abs().mean() < 0.05 and not torch.equal(bf16, fp32)
    out = tmp_path / "bf16.png"
    result = runner.invoke(app, ["generate", str(gan_run), "--wav", str(wav), "--bf16", "-n", "2", "-o", str(out)])
    assert result.exit_code == 0 and out.exists(), result.output
    with pytest.raises(UserError, match=r"precision='fp8': must be one of fp32\|bf16\|fp16"):
        SpeechToImage.from_pretrained(gan_run, precision="fp8")
    with pytest.raises(UserError, match=r"precision fp16 runs on a GPU only"):
        SpeechToImage.from_pretrained(gan_run, precision="fp16")


def test_bad_audio_is_one_line_naming_it(gan_run, tmp_path):
    pipe = SpeechToImage.from_pretrained(gan_run)
    with pytest.raises(UserError, match=r"audio\[0\]: silent \(no signal at all\)"):
        pipe(audio=np.zeros(22050, dtype=np.float32), sample_rate=22050)
    with pytest.raises(UserError, match=r"audio\[0\]: utterance too short: 0.050 s gives \d+ frames"):
        pipe(audio=0.5 * np.sin(np.arange(800) / 5).astype(np.float32), sample_rate=16000)
    with pytest.raises(UserError, match="sample_rate"):
        pipe(audio=np.ones(100, dtype=np.float32))
    with pytest.raises(UserError, match="give at least one"):
        pipe()
    quiet = tmp_path / "quiet.wav"
    sf.write(quiet, np.full(16000, 1e-5, dtype=np.float32), 16000)
    result = runner.invoke(app, ["generate", str(gan_run), "--wav", str(quiet), "-o", str(tmp_path / "x.png")])
    assert result.exit_code == 2 and "quiet.wav: silent" in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "x.png").exists()
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00")
    with pytest.raises(UserError, match="broken.wav"):
        pipe(wav=broken)
    with pytest.raises(UserError, match="neither an `s2ikit export` folder"):
        SpeechToImage.from_pretrained(tmp_path)


def test_import_s2ikit_stays_light_and_exports_the_pipeline():
    code = (
        "import sys, s2ikit; assert 'torch' not in sys.modules, 'torch imported'; "
        "from s2ikit import SpeechToImage; from s2ikit.core.speech_to_image import SpeechToImage as P; "
        "assert SpeechToImage is P and 'torch' in sys.modules"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
