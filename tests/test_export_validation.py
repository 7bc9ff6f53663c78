"""A damaged or hostile export folder is refused in one line naming the file and the key, before anything is
allocated, and nothing is written: every key dropped, every value of the wrong type, huge sizes, paths leading
out of the folder, invalid JSON, truncated or oversize weight files."""

import copy
import json
import os
import shutil
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from s2ikit.cli import app
from s2ikit.core.export import WEIGHTS, load_export, load_pretrained
from s2ikit.utils.atomic import file_sha256
from s2ikit.utils.errors import UserError

runner = CliRunner()

# keys an export may lack: the network's own defaults stand for them (older writers), or the data set is gone
OPTIONAL = {
    "generator_args.smm_hidden", "generator_args.condition", "generator_args.output_symmetry",
    "dataset.image_size", "dataset.classes", "dataset.splits", "dataset.splits.train", "dataset.splits.test",
    "tts.formant_shifts", "tts.rooms", "tts.room_drrs",  # settings newer than the exports before them
}  # fmt: skip
FREE = ("training", "evaluation")  # shown or recorded, never built from: only their type is checked


@pytest.fixture(scope="module")
def export(gan_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "model"
    assert runner.invoke(app, ["export", str(gan_run), str(out)]).exit_code == 0
    return out


def leaves(value, path=""):
    """(dotted path, value) of every key of config.json that the schema checks, objects included."""
    if isinstance(value, dict):
        for key, v in value.items():
            sub = f"{path}.{key}" if path else key
            yield sub, v
            if sub not in FREE:
                yield from leaves(v, sub)


def edited(config, path, edit):
    """A copy of `config` with `edit(parent, key)` applied at the dotted `path`."""
    config = copy.deepcopy(config)
    *parents, key = path.split(".")
    node = config
    for part in parents:
        node = node[part]
    edit(node, key)
    return config


def wrong_type(value):
    """A JSON value of another type than `value`."""
    if isinstance(value, bool):
        return 1
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return 5
    if isinstance(value, list):
        return {"a": value}
    return [value]


def snapshot(folder):
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()}


def damaged_copy(export, tmp_path, config=None):
    folder = tmp_path / "damaged"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(export, folder)
    if config is not None:
        (folder / "config.json").write_text(json.dumps(config))
    return folder


def refused(folder, *expected):
    """load_pretrained's one-line message (it must name config.json or a weight file), checking that nothing
    was written in the folder."""
    before = snapshot(folder)
    with pytest.raises(UserError) as info:
        load_pretrained(folder)
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(folder)), message
    for part in expected:
        assert part in message, message
    assert snapshot(folder) == before
    return message


def test_every_key_dropped_or_of_the_wrong_type_is_named(export, tmp_path):
    config = json.loads((export / "config.json").read_text())
    paths = [path for path, _ in leaves(config)]
    assert {"generator_args.ngf", "speech_args.conv_channels", "features.n_mels", "files.generator.sha256"} <= set(
        paths
    )
    for path, value in leaves(config):
        folder = damaged_copy(export, tmp_path, edited(config, path, lambda node, key: node.pop(key)))
        if path in OPTIONAL:  # the default stands for it: it loads, or its weights do not fit that default
            try:
                assert load_pretrained(folder).info["step"] == 2, path
            except UserError:
                refused(folder, "generator.safetensors: does not fit the generator config.json describes: tensor")
        else:
            refused(folder, "config.json: ", f"{path}: missing")
        bad = wrong_type(value)
        folder = damaged_copy(
            export, tmp_path, edited(config, path, lambda node, key, bad=bad: node.__setitem__(key, bad))
        )
        refused(folder, "config.json: ", f"{path}: ")


def test_huge_and_out_of_range_values_are_refused_before_anything_is_allocated(export, tmp_path):
    config = json.loads((export / "config.json").read_text())
    numbers = [(p, v) for p, v in leaves(config) if isinstance(v, (int, float)) and not isinstance(v, bool)]
    assert len(numbers) > 20
    for path, value in numbers:
        for bad in (10**13, -1, float("nan")) if isinstance(value, int) else (1e13, -1.0, float("inf")):
            started = time.monotonic()
            folder = damaged_copy(export, tmp_path)
            damaged = edited(config, path, lambda node, key, bad=bad: node.__setitem__(key, bad))
            # json writes nan and inf as the non-standard NaN and Infinity, which Python's reader accepts
            (folder / "config.json").write_text(json.dumps(damaged))
            newer = path == "format_version" and bad > 1  # a later format is told to upgrade s2ikit
            refused(folder, "is newer than this s2ikit reads" if newer else f"{path}: expected ")
            assert time.monotonic() - started < 5, path
    # the sizes the issue named, with the exact line a user sees
    folder = damaged_copy(export, tmp_path, edited(config, "generator_args.ngf", lambda n, k: n.__setitem__(k, 10**9)))
    message = refused(folder)
    assert message == f"{folder}/config.json: generator_args.ngf: expected an integer in [1, 256], got 1000000000"
    big = edited(config, "speech_args.embed_dim", lambda n, k: n.__setitem__(k, 10**9))
    refused(damaged_copy(export, tmp_path, big), "speech_args.embed_dim: expected an even integer in [2, 4096]")
    refused(damaged_copy(export, tmp_path, {**config, "format_version": "1"}), "format_version: expected an integer")
    refused(damaged_copy(export, tmp_path, {**config, "format_version": 7}), "format 7 is newer", "upgrade s2ikit")
    # each value within its range, but together a network of billions of parameters: counted, not built
    wide = copy.deepcopy(config)
    wide["generator_args"].update(image_size=256, ngf=256, z_dim=1024, smm_hidden=4096)
    refused(damaged_copy(export, tmp_path, wide), "generator_args: describes a network of", "more than an export")
    # values that must agree across sections
    other = edited(config, "generator_args.cond_dim", lambda n, k: n.__setitem__(k, 32))
    refused(damaged_copy(export, tmp_path, other), "generator_args.cond_dim: must equal speech_args.embed_dim (16)")


def test_weight_paths_are_confined_to_the_folder(export, tmp_path):
    config = json.loads((export / "config.json").read_text())
    outside = tmp_path / "outside.safetensors"
    shutil.copyfile(export / WEIGHTS["generator"], outside)

    def at(path):
        return edited(config, "files.generator.path", lambda node, key: node.__setitem__(key, path))

    refused(damaged_copy(export, tmp_path, at(str(outside))), "files.generator.path: ", "absolute path")
    refused(damaged_copy(export, tmp_path, at("../outside.safetensors")), "files.generator.path: ", "..")
    refused(damaged_copy(export, tmp_path, at("sub/../../outside.safetensors")), "files.generator.path: ")
    folder = damaged_copy(export, tmp_path, at("link.safetensors"))
    (folder / "link.safetensors").symlink_to(outside)
    refused(folder, "files.generator.path: ", "leads outside the export folder")
    # a link that stays inside the folder is fine: a hub's cache stores files as such links
    folder = damaged_copy(export, tmp_path, at("inside.safetensors"))
    (folder / "inside.safetensors").symlink_to(folder / WEIGHTS["generator"])
    assert load_pretrained(folder).info["step"] == 2
    refused(damaged_copy(export, tmp_path, at("nowhere.safetensors")), "nowhere.safetensors: missing")


def test_invalid_json_and_damaged_weight_files_are_named(export, tmp_path):
    folder = damaged_copy(export, tmp_path)
    text = (folder / "config.json").read_text()
    (folder / "config.json").write_text(text[: len(text) // 2])
    message = refused(folder, f"{folder}/config.json: not valid JSON (", "line ")
    assert "neither" not in message
    (folder / "config.json").write_text("[" * 200_000)
    refused(folder, "config.json: not valid JSON")
    (folder / "config.json").write_bytes(b"\xff\xfe{}")
    refused(folder, "config.json: not valid JSON")
    (folder / "config.json").write_text(json.dumps([1, 2]))
    refused(folder, "config.json: not an `s2ikit export` config")
    # a truncated weight file whose sha256 was updated to match: the file itself is refused
    config = json.loads(text)
    folder = damaged_copy(export, tmp_path)
    weights = folder / WEIGHTS["speech_encoder"]
    weights.write_bytes(weights.read_bytes()[:-100])
    config["files"]["speech_encoder"]["sha256"] = file_sha256(weights)
    (folder / "config.json").write_text(json.dumps(config))
    refused(folder, f"{weights}: not a readable safetensors file")
    # a weight file far larger than the network it is for is refused by its size, before it is read
    folder = damaged_copy(export, tmp_path)
    weights = folder / WEIGHTS["generator"]
    with open(weights, "r+b") as f:
        f.truncate(200 << 20)  # sparse: no disk used
    started = time.monotonic()
    refused(folder, f"{weights}: 209,715,200 bytes, more than the network config.json describes can hold")
    assert time.monotonic() - started < 2


def test_weights_that_do_not_fit_the_config_are_one_line_naming_the_tensor(export, tmp_path):
    config = json.loads((export / "config.json").read_text())
    wider = edited(config, "generator_args.ngf", lambda node, key: node.__setitem__(key, 8))
    message = refused(damaged_copy(export, tmp_path, wider), "generator.safetensors: does not fit the generator")
    assert "tensor 'fc.weight' has shape [512, 100] in the file, [1024, 100] in the network" in message
    assert len(message) < 300


def test_the_cli_gives_one_line_and_writes_no_image(export, tmp_path):
    config = json.loads((export / "config.json").read_text())
    cases = {
        "huge": (edited(config, "generator_args.ngf", lambda n, k: n.__setitem__(k, 10**9)), "generator_args.ngf"),
        "escape": (edited(config, "files.generator.path", lambda n, k: n.__setitem__(k, "/etc/passwd")),
                   "files.generator.path"),
        "version": ({**config, "format_version": "1"}, "format_version"),
    }  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"}
    for name, (damaged, key) in cases.items():
        folder = tmp_path / name
        shutil.copytree(export, folder)
        (folder / "config.json").write_text(json.dumps(damaged))
        out = tmp_path / f"{name}.png"
        cmd = [sys.executable, "-m", "s2ikit", "generate", str(folder), "--text", "a red circle", "-o", str(out)]
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 2, done.stderr
        shown = (done.stdout + done.stderr).strip()
        assert "Traceback" not in shown and len(shown.splitlines()) == 1, shown
        assert f"config.json: {key}: " in shown, shown
        assert not out.exists()
    # the untouched export still loads, through the same reader
    assert load_export(export).info["dataset"] == "shapes"
