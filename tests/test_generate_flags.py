"""`s2ikit generate --device` and `--precision`: where the generator runs and in which number format, as
SpeechToImage.from_pretrained(device=, precision=) takes them; a bad choice is one line naming the flag."""

import numpy as np
import pytest
import torch
from PIL import Image
from test_speech_to_image import write_speechlike
from typer.testing import CliRunner

from s2ikit.cli import app
from s2ikit.core.speech_to_image import SpeechToImage

runner = CliRunner()


def generate(gan_run, wav, out, *flags):
    result = runner.invoke(app, ["generate", str(gan_run), "--wav", str(wav), "-n", "2", "-o", str(out), *flags])
    return result


def grid(path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_cpu_bf16_draws_the_bf16_pictures_and_bf16_is_an_alias(gan_run, tmp_path):
    wav = write_speechlike(tmp_path / "me.wav")
    result = generate(gan_run, wav, tmp_path / "bf16.png", "--device", "cpu", "--precision", "bf16")
    assert result.exit_code == 0, result.output
    assert generate(gan_run, wav, tmp_path / "alias.png", "--device", "cpu", "--bf16").exit_code == 0
    assert generate(gan_run, wav, tmp_path / "fp32.png", "--device", "cpu", "--precision", "fp32").exit_code == 0
    assert np.array_equal(grid(tmp_path / "bf16.png"), grid(tmp_path / "alias.png"))
    assert not np.array_equal(grid(tmp_path / "bf16.png"), grid(tmp_path / "fp32.png"))  # bf16 really was used
    # the same pictures the Python API draws with the same arguments
    pipe = SpeechToImage.from_pretrained(gan_run, device="cpu", precision="bf16")
    images, _ = pipe.generate(wav=wav, num=2, seed=0)
    api = tmp_path / "api.png"
    from s2ikit.core.grid import save_rows

    save_rows(images, ["me.wav"], api)
    assert np.array_equal(grid(api), grid(tmp_path / "bf16.png"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="auto picks the GPU on this machine")
def test_auto_is_the_cpu_without_a_gpu(gan_run, tmp_path):
    wav = write_speechlike(tmp_path / "me.wav")
    assert generate(gan_run, wav, tmp_path / "auto.png").exit_code == 0
    assert generate(gan_run, wav, tmp_path / "cpu.png", "--device", "cpu").exit_code == 0
    assert np.array_equal(grid(tmp_path / "auto.png"), grid(tmp_path / "cpu.png"))


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--device", "cpu", "--precision", "fp16"], "--precision fp16 runs on a GPU only (--device cuda)"),
        (["--precision", "fp64"], "--precision 'fp64': must be one of fp32, bf16, fp16"),
        (["--bf16", "--precision", "fp16"], "--bf16 and --precision fp16: give one of them"),
        (["--device", "tpu"], "device 'tpu': must be auto, cpu, cuda or cuda:N"),
        (["--device", "cuda:99"], "device 'cuda:99': this machine has"),
    ],
)
def test_a_bad_device_or_precision_is_one_line_and_writes_nothing(gan_run, tmp_path, flags, message):
    wav = write_speechlike(tmp_path / "me.wav")
    out = tmp_path / "out.png"
    result = generate(gan_run, wav, out, *flags)
    assert result.exit_code != 0 and message in result.output, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_on_the_gpu_each_precision_draws_nearly_the_cpu_pictures(gan_run, tmp_path, precision):
    wav = write_speechlike(tmp_path / "me.wav")
    assert generate(gan_run, wav, tmp_path / "cpu.png", "--device", "cpu").exit_code == 0
    result = generate(gan_run, wav, tmp_path / "gpu.png", "--device", "cuda", "--precision", precision)
    assert result.exit_code == 0, result.output
    difference = np.abs(grid(tmp_path / "gpu.png").astype(int) - grid(tmp_path / "cpu.png").astype(int))
    assert difference.mean() < 8  # out of 255: the same pictures up to rounding of the number format
    pipe = SpeechToImage.from_pretrained(gan_run, device="cuda", precision=precision)
    assert pipe.device.type == "cuda" and (precision == "fp32" or precision in repr(pipe))
