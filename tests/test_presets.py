"""Preset files: `extends` inheritance, and the shipped presets resolving to their recorded settings."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from s2ikit.config import as_dict, load_preset, presets_dir
from s2ikit.utils.errors import UserError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

GOLDEN = Path(__file__).parent / "data" / "presets_golden.json"  # written by tests/golden_presets.py
REGENERATE = "python tests/golden_presets.py (make golden), then read the diff"


@pytest.mark.parametrize("name", sorted(p.stem for p in presets_dir().glob("*.toml")))
def test_each_shipped_preset_resolves_to_its_recorded_settings(name):
    recorded = json.loads(GOLDEN.read_text())
    assert name in recorded, f"{name}.toml is not in {GOLDEN.name}: {REGENERATE}"
    assert as_dict(load_preset(name)) == recorded[name], f"{name} resolves to other values: {REGENERATE}"


def test_the_golden_file_is_what_its_command_writes(tmp_path):
    """The command, run as documented, writes exactly the committed file (no hand edits, no stale preset)."""
    script = Path(__file__).parent / "golden_presets.py"
    copy = tmp_path / "golden_presets.py"  # writes beside itself: data/presets_golden.json under tmp_path
    copy.write_text(script.read_text())
    (tmp_path / "data").mkdir()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}  # this checkout's s2ikit
    subprocess.run([sys.executable, str(copy)], check=True, capture_output=True, env=env)
    assert (tmp_path / "data" / "presets_golden.json").read_bytes() == GOLDEN.read_bytes(), REGENERATE


def test_the_data_set_presets_are_deltas_of_the_papers_tables():
    tables = {p.stem: tomllib.loads(p.read_text()) for p in presets_dir().glob("*.toml")}
    for name in ("cub", "oxford", "flickr8k", "places"):
        assert tables[name]["extends"] == "paper" and "features" not in tables[name]
    assert tables["shapes"]["extends"] == ["paper", "voices"] and "features" not in tables["shapes"]
    assert set(tables["voices"]) == {"tts", "evaluate"}  # an overlay of voices only
    assert "features" in tables["paper"] and "extends" not in tables["paper"]


def test_a_child_inherits_its_parents_tables_and_overrides_per_key(tmp_path):
    child = tmp_path / "child.toml"
    child.write_text('extends = "shapes"\n[gan]\nngf = 8\n[cub]\nlimit = 3\n')
    preset, shapes = load_preset(str(child)), load_preset("shapes")
    assert preset.gan.ngf == 8 and preset.cub.limit == 3
    assert preset.gan.lr_g == shapes.gan.lr_g == 4e-4  # the rest of [gan] from shapes
    assert preset.encoder == shapes.encoder and preset.features == shapes.features  # [features] from paper
    grandchild = tmp_path / "grandchild.toml"
    grandchild.write_text('extends = "child.toml"\n[gan]\nndf = 4\n')  # a .toml path is relative to the file
    assert (load_preset(str(grandchild)).gan.ngf, load_preset(str(grandchild)).gan.ndf) == (8, 4)
    assert load_preset(str(child), {"gan": {"ngf": "12"}}).gan.ngf == 12  # --set still wins


def test_a_name_in_extends_is_a_preset_even_beside_a_file_of_that_name(tmp_path, monkeypatch):
    shapes = load_preset("shapes")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "shapes").write_text("not toml [")
    (tmp_path / "child.toml").write_text('extends = "shapes"\n')
    assert load_preset("child.toml") == shapes


def test_a_bad_inherited_value_names_the_file_that_set_it(tmp_path):
    (tmp_path / "base.toml").write_text('[gan]\nblock = "vsfmm"\n')
    child = tmp_path / "child.toml"
    child.write_text('extends = "base.toml"\n[gan]\nngf = 8\n')
    with pytest.raises(UserError) as error:
        load_preset(str(child))
    assert str(error.value) == f"{tmp_path / 'base.toml'} [gan].block: 'vsfmm' is not one of vsfm|dfgan"
    child.write_text('extends = "base.toml"\n[gan]\nblock = "dfgan"\n')  # a child may correct its parent
    assert load_preset(str(child)).gan.block == "dfgan"


def test_an_extends_cycle_is_one_error(tmp_path):
    (tmp_path / "a.toml").write_text('extends = "b.toml"\n')
    (tmp_path / "b.toml").write_text('extends = "a.toml"\n')
    with pytest.raises(UserError, match=r"b\.toml: extends 'a\.toml' makes a cycle \(a\.toml -> b\.toml -> a\.toml\)"):
        load_preset(str(tmp_path / "a.toml"))
    (tmp_path / "self.toml").write_text('extends = "self.toml"\n')
    with pytest.raises(UserError, match=r"makes a cycle \(self\.toml -> self\.toml\)"):
        load_preset(str(tmp_path / "self.toml"))


def test_an_unknown_or_malformed_parent_is_one_error(tmp_path):
    child = tmp_path / "child.toml"
    child.write_text('extends = "nope"\n')
    with pytest.raises(UserError) as error:
        load_preset(str(child))
    assert str(error.value).startswith(f"{child}: extends preset 'nope' not found (known: cpu, cub, ")
    child.write_text("extends = 3\n")
    with pytest.raises(UserError, match=r"child\.toml: extends must be a preset name or \.toml path, or a list"):
        load_preset(str(child))
    child.write_text('[gan]\nextends = "shapes"\n')  # only at the top
    with pytest.raises(UserError, match=r"child\.toml \[gan\]\.extends: unknown key"):
        load_preset(str(child))


def test_extends_a_list_applies_the_parents_in_order(tmp_path):
    (tmp_path / "base.toml").write_text("[gan]\nngf = 8\nndf = 8\n")
    (tmp_path / "overlay.toml").write_text("[gan]\nndf = 4\n[encoder]\nepochs = 3\n")
    (tmp_path / "child.toml").write_text('extends = ["base.toml", "overlay.toml"]\n[gan]\nz_dim = 10\n')
    preset = load_preset(str(tmp_path / "child.toml"))
    assert (preset.gan.ngf, preset.gan.ndf, preset.gan.z_dim, preset.encoder.epochs) == (8, 4, 10, 3)


def test_the_cpu_overlay_keeps_each_data_set_and_makes_it_cpu_sized():
    for name in ("cub", "oxford", "flickr8k", "places"):
        own, small = load_preset(name), load_preset(f"{name}-cpu")
        assert small.gan.image_size == 32 and small.prepare.image_size == 64 and small.encoder.image_encoder == "cnn"
        assert small.gan.time_budget_minutes == 0 and small.encoder.time_budget_minutes == 0  # defined by steps
        assert getattr(small, name).limit > 0 and own.features == small.features


def test_the_cub_preset_builds_the_papers_networks():
    from s2ikit.core.factories import build_discriminator, build_generator, generator_args

    gan = load_preset("cub").gan
    G, D = build_generator(generator_args(gan, 1024)), build_discriminator(gan, 1024)
    assert [block.conv2.out_channels for block in G.blocks] == [256, 256, 256, 256, 128, 64, 32]  # x ngf 32
    assert D.feature_channels == 1024  # 64..1024 at ndf 64 (the paper's 256 px plan)
    assert sum(p.numel() for p in G.parameters()) == 15_702_005  # pinned from the paper model's first build
    assert sum(p.numel() for p in D.parameters()) == 53_059_207
