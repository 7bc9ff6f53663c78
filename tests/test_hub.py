"""Sharing through the Hugging Face Hub, against a stand-in Hub on 127.0.0.1 (tests/hub_server.py): an export pushed
by `s2ikit export --push-to-hub` or `save_pretrained(push_to_hub=)` comes back through `from_pretrained("USER/NAME")`
drawing the same pictures; revisions, the offline cache and every failure are one line."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
from hub_server import FakeHub
from test_speech_to_image import write_speechlike
from typer.testing import CliRunner

from s2ikit.cli import app
from s2ikit.core import hub
from s2ikit.core.export import WEIGHTS, export_generator
from s2ikit.core.speech_to_image import SpeechToImage
from s2ikit.utils.errors import UserError

huggingface_hub = pytest.importorskip("huggingface_hub")
runner = CliRunner()


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    """The stand-in Hub as huggingface_hub's endpoint, with a cache of this test's own; never the network."""
    from huggingface_hub import constants

    cache = tmp_path / "hf-cache"
    with FakeHub() as server:
        env = {"HF_ENDPOINT": server.url, "HF_HOME": str(tmp_path / "hf-home"), "HF_HUB_CACHE": str(cache),
               "HF_TOKEN": "hf_stand_in", "HF_HUB_OFFLINE": "0", "HF_HUB_DISABLE_TELEMETRY": "1",
               "HF_HUB_DISABLE_PROGRESS_BARS": "1"}  # fmt: skip
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        # huggingface_hub read these when it was first imported: point the already imported module here too
        monkeypatch.setattr(constants, "ENDPOINT", server.url)
        monkeypatch.setattr(
            constants, "HUGGINGFACE_CO_URL_TEMPLATE", server.url + "/{repo_id}/resolve/{revision}/{filename}"
        )
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        server.env = env
        yield server


def pictures(pipe, wav) -> np.ndarray:
    return np.stack([np.asarray(image) for image in pipe(wav=wav, num=2, seed=3)])


def test_export_push_to_hub_then_from_pretrained_of_the_id_draws_the_same(gan_run, tmp_path, fake_hub):
    wav = write_speechlike(tmp_path / "speech.wav")
    out = tmp_path / "model"
    result = runner.invoke(app, ["export", str(gan_run), str(out), "--push-to-hub", "you/shapes-model", "--private"])
    assert result.exit_code == 0, result.output
    assert "pushed to" in result.output
    pushed = fake_hub.files("you/shapes-model")
    assert {"config.json", "README.md", *WEIGHTS.values()} <= set(pushed)
    assert all(pushed[name] == (out / name).read_bytes() for name in ["config.json", "README.md", *WEIGHTS.values()])
    assert fake_hub.repos["you/shapes-model"]["private"]

    pipe = SpeechToImage.from_pretrained("you/shapes-model")
    assert pipe.bundle.path.is_relative_to(tmp_path / "hf-cache")  # fetched into the Hub's cache, not elsewhere
    assert np.array_equal(pictures(pipe, wav), pictures(SpeechToImage.from_pretrained(out), wav))
    assert np.array_equal(pictures(pipe, wav), pictures(SpeechToImage.from_pretrained(gan_run), wav))
    # `s2ikit generate USER/NAME` draws the grid the local folder gives
    for source, grid in (("you/shapes-model", "hub.png"), (str(out), "local.png")):
        args = ["generate", source, "--wav", str(wav), "-n", "2", "--device", "cpu", "-o", str(tmp_path / grid)]
        assert runner.invoke(app, args).exit_code == 0
    assert (tmp_path / "hub.png").read_bytes() == (tmp_path / "local.png").read_bytes()
    # the model card tells a Hub reader how to load it by its id, with the `hf` command that exists
    card = pushed["README.md"].decode()
    assert "give the repo id `USER/NAME`" in card and "`hf download USER/NAME --local-dir THIS_FOLDER`" in card


def test_save_pretrained_round_trip_on_a_branch(gan_run, tmp_path, fake_hub):
    wav = write_speechlike(tmp_path / "speech.wav")
    pipe = SpeechToImage.from_pretrained(gan_run)
    folder = pipe.save_pretrained(tmp_path / "saved", push_to_hub="you/branchy")
    assert sorted(p.name for p in folder.iterdir()) == sorted(["config.json", "README.md", *WEIGHTS.values()])
    main_sha = fake_hub.repos["you/branchy"]["refs"]["main"]
    assert not fake_hub.repos["you/branchy"]["private"]  # public unless asked

    # the Hub-loaded model saved again and pushed to a new branch: byte for byte what main holds; main unchanged
    from_hub = SpeechToImage.from_pretrained("you/branchy")
    from_hub.save_pretrained(tmp_path / "copy", push_to_hub="you/branchy", revision="v2")
    assert fake_hub.repos["you/branchy"]["refs"]["main"] == main_sha
    on_main, on_branch = fake_hub.files("you/branchy"), fake_hub.files("you/branchy", "v2")
    for name in ["config.json", "README.md", *WEIGHTS.values()]:
        assert (
            on_branch[name] == on_main[name] == (tmp_path / "copy" / name).read_bytes() == (folder / name).read_bytes()
        )

    at_branch = SpeechToImage.from_pretrained("you/branchy", revision="v2")
    at_commit = SpeechToImage.from_pretrained("you/branchy", revision=main_sha)
    assert np.array_equal(pictures(at_branch, wav), pictures(pipe, wav))
    assert np.array_equal(pictures(at_commit, wav), pictures(pipe, wav))


def test_failures_are_one_line(gan_run, tmp_path, fake_hub):
    with pytest.raises(UserError, match=r"nobody/nothing: neither a local path nor a model repo on the Hub"):
        SpeechToImage.from_pretrained("nobody/nothing")
    export_generator(gan_run, tmp_path / "model")
    hub.upload(tmp_path / "model", "you/model")
    with pytest.raises(UserError, match=r"you/model: the Hub repo has no revision 'v9'"):
        SpeechToImage.from_pretrained("you/model", revision="v9")
    with pytest.raises(UserError, match=r"revision='v1': only for a Hub id"):
        SpeechToImage.from_pretrained(tmp_path / "model", revision="v1")
    # a repo without an export in it
    fake_hub.create("you/empty")
    with pytest.raises(UserError, match=r"you/empty: the Hub repo holds no config.json"):
        SpeechToImage.from_pretrained("you/empty")
    result = runner.invoke(app, ["export", str(gan_run), str(tmp_path / "x"), "--push-to-hub", "not a repo"])
    assert result.exit_code != 0 and "--push-to-hub 'not a repo': a Hub repo id is USER/NAME" in result.output
    assert not (tmp_path / "x").exists()  # refused before anything was written
    result = runner.invoke(app, ["export", str(gan_run), str(tmp_path / "y"), "--private"])
    assert result.exit_code != 0 and "--private and --revision go with --push-to-hub" in result.output


def test_a_push_the_hub_refuses_or_cannot_reach_is_one_line(gan_run, tmp_path, fake_hub, monkeypatch):
    export_generator(gan_run, tmp_path / "model")
    fake_hub.refuse_writes = True  # as the Hub answers a token without write access
    with pytest.raises(UserError, match=r"you/model: push to the Hub failed \(.*403.*\); log in with `hf auth login`"):
        hub.upload(tmp_path / "model", "you/model")
    from huggingface_hub import constants

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setattr(constants, "ENDPOINT", nowhere)
    with pytest.raises(UserError, match=r"you/model: push to the Hub failed \(.*refused.*\)$"):
        hub.upload(tmp_path / "model", "you/model")


def test_a_local_folder_wins_over_a_hub_id_of_the_same_name(gan_run, tmp_path, fake_hub, monkeypatch):
    export_generator(gan_run, tmp_path / "you" / "model")
    monkeypatch.chdir(tmp_path)
    pipe = SpeechToImage.from_pretrained("you/model")
    assert pipe.bundle.path == tmp_path / "you" / "model" or pipe.bundle.path.resolve() == tmp_path / "you" / "model"
    assert fake_hub.requests == []  # the Hub was never asked


def test_a_tampered_hub_file_is_refused_like_a_local_one(gan_run, tmp_path, fake_hub):
    export_generator(gan_run, tmp_path / "model")
    hub.upload(tmp_path / "model", "you/tampered")
    weights = bytearray(fake_hub.files("you/tampered")[WEIGHTS["generator"]])
    weights[-1] ^= 1
    fake_hub.commit("you/tampered", "main", {WEIGHTS["generator"]: bytes(weights)})
    with pytest.raises(UserError, match="does not match the sha256 in config.json"):
        SpeechToImage.from_pretrained("you/tampered")
    # a config.json whose weight path climbs out of the repo
    config = json.loads(fake_hub.files("you/tampered")["config.json"])
    config["files"]["generator"]["path"] = "../../../blobs/x"
    fake_hub.commit("you/tampered", "main", {"config.json": json.dumps(config).encode()})
    with pytest.raises(UserError, match=r"config.json: files.generator.path.*climbs out"):
        SpeechToImage.from_pretrained("you/tampered")


OFFLINE = """
import sys
from s2ikit import SpeechToImage
from s2ikit.utils.errors import UserError
try:
    pipe = SpeechToImage.from_pretrained(sys.argv[1])
except UserError as e:
    print("ERROR", e)
else:
    print("LOADED", pipe.step)
"""


def test_hf_hub_offline_loads_from_the_cache_and_names_what_is_missing(gan_run, tmp_path, fake_hub):
    export_generator(gan_run, tmp_path / "model")
    hub.upload(tmp_path / "model", "you/cached")
    SpeechToImage.from_pretrained("you/cached")  # fills the cache
    fake_hub.server.shutdown()  # no Hub any more: HF_HUB_OFFLINE=1 must not need one
    env = {**os.environ, **fake_hub.env, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join([os.getcwd(), env.get("PYTHONPATH", "")])

    def load(repo: str) -> str:
        done = subprocess.run([sys.executable, "-c", OFFLINE, repo], env=env, capture_output=True, text=True,
                              timeout=300, cwd=tmp_path)  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    assert load("you/cached").startswith("LOADED")
    missing = load("you/never-fetched")
    assert missing.startswith("ERROR you/never-fetched: not in the Hub cache") and "HF_HUB_OFFLINE is set" in missing
    assert len(missing.splitlines()) == 1


def test_without_huggingface_hub_a_hub_id_names_the_package(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import fails as if not installed
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match=r"pip install huggingface_hub"):
        SpeechToImage.from_pretrained("you/model")
    assert not hub.is_hub_id("runs/shapes/gan") and not hub.is_hub_id("/abs/x") and not hub.is_hub_id("a/../b")
    assert hub.is_hub_id("you/model") and hub.is_hub_id("org-1/s2ikit.shapes_v2")
