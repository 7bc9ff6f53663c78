"""The default shapes preparation end to end, checked against data_manifests/shapes.toml (make test-slow)."""

import json
import sys

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

import pytest
from typer.testing import CliRunner

from s2ikit.cli import app
from s2ikit.config import manifests_dir


@pytest.mark.slow
def test_default_shapes_preparation_matches_its_manifest(tmp_path):
    expected = tomllib.loads((manifests_dir() / "shapes.toml").read_text())["expected"]
    out = tmp_path / "data"
    result = CliRunner().invoke(
        app, ["prepare", "shapes", "--out", str(out), "--workers", "2", "--cache-dir", str(tmp_path / "cache")]
    )
    assert result.exit_code == 0, result.output
    dataset = json.loads((out / "dataset.json").read_text())
    assert len(dataset["classes"]) == expected["classes"]
    assert dataset["splits"]["train"]["samples"] == expected["train_images"]
    assert dataset["splits"]["test"]["samples"] == expected["test_images"]
    total = expected["images"] * expected["captions_per_image"]
    assert dataset["splits"]["train"]["captions"] + dataset["splits"]["test"]["captions"] == total
    assert dataset["failures"] == 0
    assert not list(out.rglob(".*.tmp-*"))
