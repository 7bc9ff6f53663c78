import json

import pytest
from conftest import TINY
from typer.testing import CliRunner

from s2ikit import __version__
from s2ikit.cli import app
from s2ikit.config import load_preset

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


def test_prepare_help_lists_every_data_set_with_a_command():
    from s2ikit.config import datasets
    from s2ikit.data.sources import source_names

    names = ["cub", "flickr8k", "manifest", "oxford", "places", "shapes", "spokencoco"]
    assert sorted(datasets()) == source_names() == names
    result = runner.invoke(app, ["prepare", "--help"])
    assert result.exit_code == 0
    assert all(name in result.output for name in datasets()) and "paper" not in result.output
    assert result.output.index("shapes") < result.output.index("cub")  # the generated one first: no download


def _prepared_context(monkeypatch, args: list[str]):
    """Run `s2ikit prepare ...` up to the pipeline and return the PrepareContext it would have run."""
    import s2ikit.preparation.prepare

    seen = []

    def stop(ctx, options, console):
        seen.append(ctx)
        raise SystemExit(0)

    monkeypatch.setattr(s2ikit.preparation.prepare, "prepare", stop)
    result = runner.invoke(app, ["prepare", *args])
    assert seen, result.output
    return seen[0]


def test_each_data_sets_own_flags_set_their_preset_keys(monkeypatch, tmp_path):
    (tmp_path / "classes.txt").write_text("001.Black_footed_Albatross\n")
    args = ["cub", "--root", str(tmp_path), "--out", str(tmp_path / "o"), "--limit", "3", "--no-bbox-crop"]
    args += ["--test-classes", "classes.txt", "--image-size", "16", "--tts", "coqui"]
    monkeypatch.chdir(tmp_path)
    ctx = _prepared_context(monkeypatch, args)
    assert (ctx.dataset, ctx.root, ctx.preset.cub.limit, ctx.preset.cub.bbox_crop) == ("cub", tmp_path, 3, False)
    assert ctx.preset.cub.test_classes == str(tmp_path / "classes.txt")  # made absolute
    assert (ctx.preset.prepare.image_size, ctx.preset.tts.backend) == (16, "coqui")
    assert ctx.preset.gan == load_preset("cub").gan  # the data set's own preset, over pipelines/paper.toml
    ctx = _prepared_context(monkeypatch, ["places", "--root", ".", "--out", "o", "--metadata", "m.json"])
    assert (ctx.preset.places.metadata, ctx.preset.places.limit) == (str(tmp_path / "m.json"), 0)
    ctx = _prepared_context(monkeypatch, ["shapes", "--out", "o", "--images-per-class", "2", "-j", "2"])
    assert (ctx.root, ctx.preset.shapes.images_per_class, ctx.preset.prepare.image_format) == (None, 2, "png")
    for dataset, absent in (("flickr8k", "--tts"), ("places", "--cache-dir"), ("shapes", "--root")):
        assert absent not in runner.invoke(app, ["prepare", dataset, "--help"]).output


@pytest.mark.parametrize(
    "setting, message",
    [
        ("tts.length_scales=", "--set tts.length_scales: must not be empty"),
        ("features.n_mels=0", "--set features.n_mels: must be at least 1, got 0"),
        ("prepare.image_size=0", "--set prepare.image_size: must be at least 8, got 0"),
        ("features.dtype=int8", "--set features.dtype: 'int8' is not one of float32|float16"),
        ("prepare.image_format=gif", "--set prepare.image_format: 'gif' is not one of png|jpg"),
        ("features.normalize=bogus", "--set features.normalize: 'bogus' is not one of utterance|none"),
    ],
)
def test_a_bad_setting_stops_prepare_with_one_line_naming_the_flag(tmp_path, setting, message):
    result = runner.invoke(app, ["prepare", "shapes", "--out", str(tmp_path / "d"), "--set", setting])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.replace("\n", " ").strip() == f"error: {message}"
    assert not (tmp_path / "d").exists()  # refused before anything was made


def test_a_bad_value_in_a_preset_file_is_named_by_file_and_key(tmp_path):
    preset = tmp_path / "mine.toml"
    preset.write_text('extends = "shapes"\n[prepare]\njpeg_quality = 0\n')
    result = runner.invoke(app, ["prepare", "shapes", "--out", str(tmp_path / "d"), "--preset", str(preset)])
    assert result.exit_code == 2
    assert "mine.toml [prepare].jpeg_quality: must be in [1, 100], got 0" in result.output.replace("\n", "")


def test_train_gan_refuses_an_unknown_block_before_it_starts(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "dataset.json").write_text(json.dumps({"dataset": "shapes"}))
    args = ["train-gan", "-d", str(data), "-e", str(tmp_path / "enc"), "-r", str(tmp_path / "run")]
    result = runner.invoke(app, [*args, "--set", "gan.block=vsfmm"])
    assert result.exit_code == 2
    assert result.output.strip() == "error: --set gan.block: 'vsfmm' is not one of vsfm|dfgan"
    assert not (tmp_path / "run").exists()


def _evaluate_refuses(tmp_path, *args: str) -> str:
    """`s2ikit evaluate` with these arguments: refused before anything is loaded or written; its one line."""
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    (data / "dataset.json").write_text(json.dumps({"dataset": "shapes"}))
    out = tmp_path / "eval"
    result = runner.invoke(app, ["evaluate", str(tmp_path / "no-run"), "-d", str(data), "-o", str(out), *args])
    assert result.exit_code == 2 and "Traceback" not in result.output and not out.exists(), result.output
    return result.output.replace("\n", " ").strip()


def test_evaluate_refuses_an_unknown_metric_in_one_line_naming_the_flag_or_preset_key(tmp_path):
    from s2ikit.metrics import REGISTRY

    known = ", ".join(sorted(REGISTRY))
    assert "class_accuracy, diversity" in known
    message = _evaluate_refuses(tmp_path, "--metrics", "fid,bogus")
    assert message == f"error: --metrics: unknown metric 'bogus' (known: {known})"
    assert _evaluate_refuses(tmp_path, "--metrics", " , ") == "error: --metrics: must not be empty"
    assert _evaluate_refuses(tmp_path, "--metrics", "fid, fid") == "error: --metrics: metric 'fid' is named twice"
    message = _evaluate_refuses(tmp_path, "--set", "evaluate.metrics=diversity,bogus")
    assert message == f"error: --set evaluate.metrics: unknown metric 'bogus' (known: {known})"
    # in a preset: the file and key where the name was written, through `extends`
    parent, child = tmp_path / "mine.toml", tmp_path / "child.toml"
    parent.write_text('extends = "shapes"\n[evaluate]\nmetrics = ["fid", "bogus"]\n')
    child.write_text('extends = "mine.toml"\n[evaluate]\nseed = 1\n')
    for preset in (parent, child):
        message = _evaluate_refuses(tmp_path, "--preset", str(preset))
        assert message == f"error: {parent} [evaluate].metrics: unknown metric 'bogus' (known: {known})"
    # the flag wins over the preset's key, so a good flag is not refused for the preset's bad name
    result = runner.invoke(app, ["evaluate", str(tmp_path / "no-run"), "-d", str(tmp_path / "data"), "--preset",
                                 str(parent), "--metrics", "fid"])  # fmt: skip
    assert result.exit_code == 2 and "no-run" in result.output and "bogus" not in result.output
