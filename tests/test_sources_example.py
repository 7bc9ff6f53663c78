"""docs/adding-a-data-set.md's example, run as written: one module plus one preset make a data set, with its
`s2ikit prepare NAME` command, its checked [NAME] section and its model-card terms, and nothing else edited."""

from __future__ import annotations

import json
import re
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

import s2ikit.config
import s2ikit.data.sources
import s2ikit.data.sources.base
from s2ikit.config import load_preset, parse_overrides, presets_dir
from s2ikit.utils.errors import UserError

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "adding-a-data-set.md"


def guide_block(language: str) -> str:
    (block,) = re.findall(rf"```{language}\n(.*?)```", GUIDE.read_text(), re.S)
    return block


@pytest.fixture
def catalog(monkeypatch, tmp_path):
    """A catalog to add the example to, the shipped presets plus the guide's, and no trace of it afterwards."""
    monkeypatch.setattr(s2ikit.config, "_DATASETS", dict(s2ikit.config._DATASETS))
    monkeypatch.setattr(s2ikit.data.sources.base, "_SOURCES", dict(s2ikit.data.sources.base._SOURCES))
    presets = tmp_path / "pipelines"
    presets.mkdir()
    for path in presets_dir().glob("*.toml"):
        (presets / path.name).write_text(path.read_text())
    (presets / "folder.toml").write_text(guide_block("toml"))
    monkeypatch.setattr(s2ikit.config, "presets_dir", lambda: presets)
    yield tmp_path
    for name in [m for m in sys.modules if m.endswith(("sources.folder", "folder_data_set"))]:
        del sys.modules[name]
    vars(s2ikit.data.sources).pop("folder", None)


def pictures(root: Path) -> Path:
    """2 classes x 3 pictures, each with a one-second recording."""
    rng = np.random.default_rng(0)
    for cls in ("cats", "dogs"):
        (root / cls).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(root / cls / f"p{i}.png")
            with wave.open(str(root / cls / f"p{i}.wav"), "wb") as w:
                w.setnchannels(1)
                w.setsampwidth(2)
                w.setframerate(16000)
                tone = np.sin(np.arange(16000) * (0.05 + 0.01 * i)) * 8000
                w.writeframes(tone.astype(np.int16).tobytes())
    return root


def prepare_group() -> typer.Typer:
    from s2ikit.cli import add_prepare_commands

    app, group = typer.Typer(), typer.Typer()
    app.add_typer(group, name="prepare")
    add_prepare_commands(group)
    return app


def test_one_module_in_the_sources_package_and_one_preset_make_a_data_set(catalog, monkeypatch):
    package = catalog / "package"
    package.mkdir()
    (package / "folder.py").write_text(guide_block("python"))
    monkeypatch.setattr(s2ikit.data.sources, "__path__", [*s2ikit.data.sources.__path__, str(package)])
    s2ikit.data.sources._discover()  # what `import s2ikit` does: every module of the package

    preset = load_preset("folder")
    assert preset.folder.test_fraction == 0.2 and preset.gan.image_size == 64 and preset.cub.limit == 0
    with pytest.raises(UserError, match=r"^--set folder\.test_fraction: must be in \[0, 1\), got 1\.0$"):
        load_preset("folder", parse_overrides(["folder.test_fraction=1"]))
    with pytest.raises(UserError, match=r"\[folder\]\.limt: unknown key \(known: limit, test_fraction\)"):
        (catalog / "mine.toml").write_text('extends = "folder"\n[folder]\nlimt = 3\n')
        load_preset(str(catalog / "mine.toml"))

    from s2ikit.core.export import data_terms

    assert data_terms("folder").startswith("These weights were trained on the owner's own pictures")

    app, runner = prepare_group(), CliRunner()
    shown = runner.invoke(app, ["prepare", "folder", "--help"], env={"COLUMNS": "200"}).output
    assert "Your own pictures with recorded descriptions" in shown and "--limit" in shown and "--root" in shown
    assert "--tts" not in shown and "--cache-dir" not in shown
    assert "folder" in runner.invoke(app, ["prepare", "--help"]).output

    root, out = pictures(catalog / "mine"), catalog / "data"
    result = runner.invoke(app, ["prepare", "folder", "--root", str(root), "--out", str(out), "--image-size", "16"])
    assert result.exit_code == 0, result.output
    info = json.loads((out / "dataset.json").read_text())
    assert info["dataset"] == "folder" and info["classes"] == ["cats", "dogs"]
    assert sum(split["samples"] for split in info["splits"].values()) == 6
    assert sum(split["captions"] for split in info["splits"].values()) == 6
    result = runner.invoke(app, ["prepare", "folder", "--root", str(catalog), "--out", str(catalog / "o2")])
    assert result.exit_code == 2 and "no CLASS/PICTURE.png (or .jpg) beside a CLASS/PICTURE.wav" in result.output


def test_a_package_adds_the_same_data_set_by_an_entry_point(catalog, monkeypatch):
    site = catalog / "site"
    (site / "folder_data_set-1.0.dist-info").mkdir(parents=True)
    (site / "folder_data_set-1.0.dist-info" / "METADATA").write_text("Name: folder-data-set\nVersion: 1.0\n")
    (site / "folder_data_set-1.0.dist-info" / "entry_points.txt").write_text(
        "[s2ikit.datasets]\nfolder = folder_data_set\n"
    )
    (site / "folder_data_set.py").write_text(guide_block("python"))
    monkeypatch.syspath_prepend(str(site))
    assert "folder" not in s2ikit.config.datasets()
    s2ikit.data.sources._discover()
    assert load_preset("folder").folder.limit == 0
    names = ["cub", "flickr8k", "folder", "manifest", "oxford", "places", "shapes", "spokencoco"]
    assert s2ikit.data.sources.source_names() == names
