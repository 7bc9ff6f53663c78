import json

from conftest import TINY
from typer.testing import CliRunner

from s2ikit import __version__
from s2ikit.cli import app

runner = CliRunner()


def test_version_and_help_for_every_command():
    assert runner.invoke(app, ["--version"]).output.strip() == f"s2ikit {__version__}"
    for args in ([], ["prepare"], ["prepare", "shapes"], ["doctor"], ["evaluate"], ["generate"], ["train-gan"]):
        result = runner.invoke(app, args + ["--help"])
        assert result.exit_code == 0 and "Usage" in result.output


def test_doctor_reports_each_component():
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 0
    for component in ("torch", "TTS backend 'piper'", "Inception", "free disk"):
        assert component in result.output


def test_prepare_shapes_from_the_command_line(tmp_path, tts_cache):
    sets = [f"{section}.{k}={v}" for section, table in TINY.items() for k, v in table.items()]
    args = ["prepare", "shapes", "--out", str(tmp_path / "d"), "--cache-dir", str(tts_cache)]
    for s in sets:
        args += ["--set", s]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "prepared" in result.output
    assert json.loads((tmp_path / "d/dataset.json").read_text())["splits"]["test"]["samples"] == 8


def test_bad_flag_value_is_one_line_without_traceback(tmp_path):
    result = runner.invoke(app, ["prepare", "shapes", "--out", str(tmp_path), "--set", "prepare.image_size=huge"])
    assert result.exit_code == 2
    assert "error:" in result.output and "image_size: expected int, got 'huge'" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(app, ["prepare", "shapes", "--out", str(tmp_path), "--force", "speach"])
    assert result.exit_code == 2 and "--force speach: unknown step" in result.output


def test_bad_setting_is_refused_before_a_training_run_starts(reference, tmp_path):
    for command, setting in (("train-encoder", "encoder.image_augment"), ("train-gan", "gan.augment_real")):
        args = [command, "-d", str(reference), "-r", str(tmp_path / "run"), "--set", f"{setting}=rotate"]
        result = runner.invoke(app, args + (["-e", str(tmp_path / "no-encoder")] if command == "train-gan" else []))
        assert result.exit_code == 2, (setting, result.output)
        assert setting in result.output and "Traceback" not in result.output
        assert not (tmp_path / "run").exists()  # no half-made run folder left behind
