"""`s2ikit export`: a pickle-free folder that a fresh process loads into the same images as the run it came from."""

import json
import os
import shutil
import struct
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch
from test_speech_to_image import write_speechlike
from typer.testing import CliRunner

from s2ikit.cli import app
from s2ikit.core.export import WEIGHTS, load_export
from s2ikit.core.speech_to_image import SpeechToImage
from s2ikit.utils.errors import UserError

runner = CliRunner()

# In the fresh process torch.load (the pickle reader) is made to fail: the export must not need it.
FRESH = """
import sys, numpy as np, torch
torch.set_num_threads(int(sys.argv[4]))
def refuse(*args, **kwargs):
    raise AssertionError("torch.load called on an exported folder")
torch.load = refuse
from s2ikit import SpeechToImage
pipe = SpeechToImage.from_pretrained(sys.argv[1])
np.save(sys.argv[3], np.stack([np.asarray(image) for image in pipe(wav=sys.argv[2], num=3, seed=0)]))
"""


def copy_run(gan_run, tmp_path):
    """The shared run, copied: these tests add an evaluation report to it."""
    run = tmp_path / "run"
    shutil.copytree(gan_run, run)
    return run


def safetensors_header(path) -> dict:
    """The JSON header of a safetensors file, after checking that the tensors' bytes fill the rest exactly."""
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    ends = [entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"]
    assert max(ends) == len(data) - 8 - length
    return header


def report_json(step: int) -> dict:
    """The fields of an `s2ikit evaluate` report.json that the model card shows."""
    return {"step": step, "dataset": "shapes", "test_captions": 16, "generated_images": 16,
            "settings": {"images_per_caption": 1},
            "metrics": {"class_accuracy": {"accuracy": {"shape": 0.625, "colour": 0.9375}, "images": 16},
                        "fid": {"value": 123.4567, "generated_images": 16, "real_images": 8}}}  # fmt: skip


def test_an_export_loads_in_a_fresh_process_into_the_same_images(gan_run, tmp_path):
    run, out, wav = copy_run(gan_run, tmp_path), tmp_path / "model", write_speechlike(tmp_path / "me.wav")
    (run / "eval").mkdir()
    (run / "eval/report.json").write_text(json.dumps(report_json(2)))
    result = runner.invoke(app, ["export", str(run), str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", *sorted(WEIGHTS.values())]
    for path in out.iterdir():  # no pickle anywhere: no zip (torch.save), no pickle protocol opcode
        assert not zipfile.is_zipfile(path) and not path.read_bytes().startswith(b"\x80"), path
    for name, file in WEIGHTS.items():
        header = safetensors_header(out / file)
        assert json.loads(header["__metadata__"]["s2ikit"])["network"] == name
    config = json.loads((out / "config.json").read_text())
    assert config["format"] == "s2ikit-generator-export" and config["format_version"] == 1 and config["step"] == 2
    assert config["generator_args"]["image_size"] == 32 and config["speech_args"]["embed_dim"] == 16
    assert config["generator_args"]["output_symmetry"] == "dihedral"  # the loaded export draws through it too
    assert config["features"]["sample_rate"] == 22050 and config["tts"]["backend"] == "piper"
    assert config["dataset"]["name"] == "shapes"
    card = (out / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: s2ikit\n") and "# Fusion-S2iGan on shapes" in card
    assert "| fid/value | 123.5 |" in card and "| class_accuracy/accuracy/shape | 0.625 |" in card
    assert "S2IGAN's protocol" in card and "SpeechToImage.from_pretrained" in card and "MIT" in card
    # `generate` draws the same grid from the export as from the run
    grids = []
    for source in (run, out):
        grids.append(tmp_path / f"{source.name}.png")
        args = ["generate", str(source), "--wav", str(wav), "-n", "3", "-o", str(grids[-1])]
        assert runner.invoke(app, args).exit_code == 0
    assert grids[0].read_bytes() == grids[1].read_bytes()
    # and a fresh process, which never unpickles anything, the same images as the run here, bit for bit
    fresh = tmp_path / "fresh.npy"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    cmd = [sys.executable, "-c", FRESH, str(out), str(wav), str(fresh), str(torch.get_num_threads())]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    here = np.stack([np.asarray(image) for image in SpeechToImage.from_pretrained(run)(wav=wav, num=3, seed=0)])
    assert np.array_equal(np.load(fresh), here)


def test_a_damaged_or_misplaced_export_is_refused_in_one_line(gan_run, tmp_path):
    out = tmp_path / "model"
    assert runner.invoke(app, ["export", str(gan_run), str(out)]).exit_code == 0
    assert "Not evaluated yet" in (out / "README.md").read_text()
    weights = out / WEIGHTS["generator"]
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(UserError, match="generator.safetensors: does not match the sha256 in config.json"):
        load_export(out)
    # exporting again over an earlier export replaces it; an unrelated folder is left alone
    assert runner.invoke(app, ["export", str(gan_run), str(out)]).exit_code == 0
    assert load_export(out).info["step"] == 2
    other = tmp_path / "notes"
    other.mkdir()
    (other / "mine.txt").write_text("keep")
    result = runner.invoke(app, ["export", str(gan_run), str(other)])
    assert result.exit_code == 2 and "not empty and not an `s2ikit export` folder" in result.output
    assert [p.name for p in other.iterdir()] == ["mine.txt"]
    # a report of another step than the checkpoint's is not passed off as this checkpoint's numbers
    run = copy_run(gan_run, tmp_path)
    (run / "eval").mkdir()
    (run / "eval/report.json").write_text(json.dumps(report_json(1)))
    assert runner.invoke(app, ["export", str(run), str(tmp_path / "m2")]).exit_code == 0
    card = (tmp_path / "m2/README.md").read_text()
    assert "is of step 1, not of this checkpoint's step 2" in card and "fid/value" not in card


def test_two_exports_of_one_checkpoint_are_byte_identical(gan_run, tmp_path):
    from s2ikit.core.export import export_generator

    first, second = export_generator(gan_run, tmp_path / "a"), export_generator(gan_run, tmp_path / "b")
    for name in ("generator.safetensors", "speech_encoder.safetensors", "config.json"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
