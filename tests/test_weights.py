"""Standard weight files: fetched on first use from a local HTTP server, verified, atomic, offline-aware."""

from __future__ import annotations

import hashlib
import io
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from s2ikit.cli import app
from s2ikit.metrics.fidelity import find_fidelity_weights
from s2ikit.models import weights
from s2ikit.models.image_encoder import build_image_encoder, find_inception_weights
from s2ikit.utils.download import hash_in_name
from s2ikit.utils.errors import UserError

runner = CliRunner()


@dataclass
class Server:
    """What the local server serves (path -> bytes or a file), which paths it cuts short, what it was asked."""

    url: str = ""
    files: dict[str, bytes | Path] = field(default_factory=dict)
    cut: set[str] = field(default_factory=set)
    requests: list[str] = field(default_factory=list)
    delay: float = 0.0  # seconds before each answer, so that concurrent clients overlap


@pytest.fixture
def server():
    state = Server()

    class Handler(BaseHTTPRequestHandler):
        timeout = 10  # seconds: a stalled client cannot hold a server thread longer

        def do_GET(self):
            state.requests.append(self.path)
            time.sleep(state.delay)
            body = state.files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            if isinstance(body, Path):
                body = body.read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.path in state.cut:  # promise the whole body, send half, hang up
                self.wfile.write(body[: len(body) // 2])
                self.close_connection = True
            else:
                self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=10)


@pytest.fixture
def hub(tmp_path, monkeypatch, server) -> Path:
    """An empty torch hub cache, online, fetching through the local server as a mirror."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(weights.OFFLINE_ENV, raising=False)
    monkeypatch.setenv(weights.MIRROR_ENV, f"{server.url}/mirror")
    return tmp_path / "torch" / "hub" / "checkpoints"


def state_dict_bytes(seed: int = 0) -> bytes:
    buffer = io.BytesIO()
    torch.save({"w": torch.randn(4, 4, generator=torch.Generator().manual_seed(seed))}, buffer)
    return buffer.getvalue()


def serve_standard(monkeypatch, server: Server, key: str, body: bytes, *, name_hash: str | None = None) -> str:
    """Register a stand-in for a standard file, named with its own sha256 prefix (or `name_hash`), and serve it."""
    real = weights.STANDARD[key]
    stem = real.name.rsplit("-", 1)[0]
    name = f"{stem}-{name_hash or hashlib.sha256(body).hexdigest()[:8]}.pth"
    fake = weights.WeightFile(name, f"{server.url}/origin", real.what, real.patterns)
    monkeypatch.setitem(weights.STANDARD, key, fake)
    server.files[f"/mirror/{name}"] = server.files[f"/origin/{name}"] = body
    return name


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_standard_files_are_the_libraries_own_and_named_by_their_sha256(monkeypatch):
    import torch.hub
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3
    from torchvision.models import Inception_V3_Weights

    monkeypatch.delenv(weights.MIRROR_ENV, raising=False)
    assert weights.source_url(weights.STANDARD["inception_v3"]) == Inception_V3_Weights.IMAGENET1K_V1.url
    assert weights.source_url(weights.STANDARD["fidelity_inception"]) == URL_INCEPTION_V3
    for entry in weights.STANDARD.values():  # the prefix torch.hub's check_hash would compare with the file's sha256
        assert entry.sha256_prefix == torch.hub.HASH_REGEX.search(entry.name).group(1) == hash_in_name(entry.name)
    assert hash_in_name("inception_v3_google-test.pth") is None and hash_in_name("weights-2015-12-05.pth") is None


@pytest.mark.parametrize(
    ("key", "find"), [("inception_v3", find_inception_weights), ("fidelity_inception", find_fidelity_weights)]
)
def test_first_use_fetches_into_the_hub_cache_and_later_uses_do_not(hub, server, monkeypatch, key, find):
    body = state_dict_bytes()
    name = serve_standard(monkeypatch, server, key, body)
    path = find()
    assert path == hub / name and path.read_bytes() == body
    assert leftovers(hub) == [name]  # no temporary file beside it
    assert find() == path
    assert server.requests == [f"/mirror/{name}"]  # fetched once, from the mirror


def test_processes_that_start_together_fetch_once(hub, server, monkeypatch):
    name = serve_standard(monkeypatch, server, "inception_v3", state_dict_bytes())
    server.delay = 0.5  # both callers find the cache empty before the first download ends
    start, found = threading.Barrier(2), []

    def use():
        start.wait()
        found.append(find_inception_weights())

    workers = [threading.Thread(target=use) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=30)
    assert found == [hub / name] * 2 and server.requests == [f"/mirror/{name}"] and leftovers(hub) == [name]


def test_publishers_address_is_used_without_a_mirror(hub, server, monkeypatch):
    monkeypatch.delenv(weights.MIRROR_ENV)
    name = serve_standard(monkeypatch, server, "inception_v3", state_dict_bytes())
    assert find_inception_weights() == hub / name
    assert server.requests == [f"/origin/{name}"]


def test_wrong_hash_is_refused_and_leaves_nothing_in_the_cache(hub, server, monkeypatch):
    serve_standard(monkeypatch, server, "inception_v3", state_dict_bytes(), name_hash="0123abcd")
    with pytest.raises(UserError, match="does not start with 0123abcd") as err:
        find_inception_weights()
    assert "\n" not in str(err.value) and not isinstance(err.value, FileNotFoundError)
    assert leftovers(hub) == []


def test_connection_cut_midway_leaves_no_partial_file(hub, server, monkeypatch):
    name = serve_standard(monkeypatch, server, "fidelity_inception", state_dict_bytes())
    server.cut.add(f"/mirror/{name}")
    with pytest.raises(FileNotFoundError, match=r"connection closed after \d+ of \d+ bytes") as err:
        find_fidelity_weights()
    assert isinstance(err.value, UserError) and "download-weights" in str(err.value) and "\n" not in str(err.value)
    assert leftovers(hub) == []


def test_no_network_says_what_to_fetch_from_where_and_where_to_put_it(hub, monkeypatch):
    with socket.socket() as s:  # a port nobody listens on: connection refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv(weights.MIRROR_ENV, f"http://127.0.0.1:{port}")
    with pytest.raises(FileNotFoundError) as err:
        find_inception_weights()
    message = str(err.value)
    url = f"http://127.0.0.1:{port}/{weights.STANDARD['inception_v3'].name}"
    assert url in message and str(hub) in message and "s2ikit download-weights" in message
    assert "--image-weights" in message and "\n" not in message
    assert leftovers(hub) == []


def test_offline_makes_no_request_and_says_how_to_get_the_file(hub, server, monkeypatch):
    name = serve_standard(monkeypatch, server, "inception_v3", state_dict_bytes())
    monkeypatch.setenv(weights.OFFLINE_ENV, "1")
    with pytest.raises(FileNotFoundError, match=weights.OFFLINE_ENV) as err:
        find_inception_weights()
    assert f"{server.url}/mirror/{name}" in str(err.value) and "download-weights" in str(err.value)
    assert server.requests == []


def test_a_damaged_cached_file_is_refused_and_download_weights_replaces_it(hub, server, monkeypatch):
    body = state_dict_bytes()
    name = serve_standard(monkeypatch, server, "inception_v3", body)
    serve_standard(monkeypatch, server, "fidelity_inception", state_dict_bytes(1))
    hub.mkdir(parents=True)
    (hub / name).write_bytes(body[:100])
    with pytest.raises(UserError, match="damaged"):
        find_inception_weights()
    assert server.requests == []
    result = runner.invoke(app, ["download-weights"])
    assert result.exit_code == 0, result.output
    assert (hub / name).read_bytes() == body and find_inception_weights() == hub / name


def test_an_explicit_path_is_never_fetched(hub, server, monkeypatch, tmp_path):
    serve_standard(monkeypatch, server, "inception_v3", state_dict_bytes())
    with pytest.raises(FileNotFoundError, match="missing.pth: Inception-v3 weights not found"):
        find_inception_weights(tmp_path / "missing.pth")
    mine = tmp_path / "mine.pth"
    mine.write_bytes(b"not checked: the user chose it")
    assert find_inception_weights(mine) == mine
    assert server.requests == [] and leftovers(hub) == []


def test_download_weights_fetches_both_then_skips_them(hub, server, monkeypatch, tmp_path):
    names = [serve_standard(monkeypatch, server, key, state_dict_bytes(i)) for i, key in enumerate(weights.STANDARD)]
    assert "download-weights [OPTIONS]" in runner.invoke(app, ["download-weights", "--help"]).output
    dest = tmp_path / "for-the-cluster"
    result = runner.invoke(app, ["download-weights", "--dest", str(dest)])
    assert result.exit_code == 0, result.output
    assert leftovers(dest) == sorted(names) and leftovers(hub) == []
    assert result.output.count("fetched, sha256 verified") == 2 and "s2ikit looks in" in result.output
    again = runner.invoke(app, ["download-weights", "--dest", str(dest)])
    assert again.exit_code == 0 and again.output.count("already there, verified") == 2
    assert len(server.requests) == 2


def test_download_weights_offline_is_one_line(hub, server, monkeypatch):
    serve_standard(monkeypatch, server, "inception_v3", state_dict_bytes())
    monkeypatch.setenv(weights.OFFLINE_ENV, "1")
    result = runner.invoke(app, ["download-weights"])
    assert result.exit_code == 2 and "error:" in result.output and weights.OFFLINE_ENV in result.output
    assert "Traceback" not in result.output and server.requests == []


@pytest.fixture(scope="module")
def inception_state_file(tmp_path_factory) -> Path:
    """A real torchvision Inception-v3 state dict with random weights (about 100 MB), made once."""
    from torchvision.models import inception_v3

    path = tmp_path_factory.mktemp("inception") / "state.pth"
    torch.save(inception_v3(weights=None, aux_logits=True, init_weights=False).state_dict(), path)
    return path


def test_inception_encoder_fetches_its_weights_and_loads_them_safely(hub, server, monkeypatch, inception_state_file):
    digest = hashlib.sha256(inception_state_file.read_bytes()).hexdigest()
    name = f"inception_v3_google-{digest[:8]}.pth"
    real = weights.STANDARD["inception_v3"]
    monkeypatch.setitem(weights.STANDARD, "inception_v3", weights.WeightFile(name, "", real.what, real.patterns))
    server.files[f"/mirror/{name}"] = inception_state_file
    loads, load = [], torch.load

    def spy(f, *args, **kwargs):
        loads.append((Path(f), kwargs.get("weights_only")))
        return load(f, *args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    encoder = build_image_encoder("inception_v3", embed_dim=8)
    assert loads == [(hub / name, True)]
    assert server.requests == [f"/mirror/{name}"] and leftovers(hub) == [name]
    assert encoder(torch.rand(1, 3, 32, 32) * 2 - 1).shape == (1, 8)


def test_train_encoder_on_a_cub_layout_fetches_inception_and_says_what_to_fetch_offline(
    hub, server, monkeypatch, inception_state_file, tmp_path, tts_cache
):
    from conftest import run, source_ctx
    from test_sources_cub import write_cub

    root, data = tmp_path / "cub", tmp_path / "data"
    write_cub(root)
    run(source_ctx("cub", root, data, tts_cache, cub={"captions_per_image": 1}))
    digest = hashlib.sha256(inception_state_file.read_bytes()).hexdigest()
    name = f"inception_v3_google-{digest[:8]}.pth"
    real = weights.STANDARD["inception_v3"]
    monkeypatch.setitem(weights.STANDARD, "inception_v3", weights.WeightFile(name, "", real.what, real.patterns))
    server.files[f"/mirror/{name}"] = inception_state_file
    args = ["train-encoder", "-d", str(data), "-r", str(tmp_path / "encoder"), "--epochs", "1"]
    for setting in ("encoder.image_encoder=inception_v3", "encoder.batch_size=2", "encoder.val_fraction=0.34",
                    "encoder.num_workers=0", "encoder.embed_dim=16", "encoder.rnn_layers=1"):  # fmt: skip
        args += ["--set", setting]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert server.requests == [f"/mirror/{name}"] and (hub / name).is_file()  # fetched once, verified, kept
    assert (tmp_path / "encoder" / "checkpoints" / "encoder-best.pt").is_file()
    # the network gone (offline) and the cache empty: one line saying what to fetch and where
    (hub / name).unlink()
    monkeypatch.setenv(weights.OFFLINE_ENV, "1")
    result = runner.invoke(app, [*args[:4], str(tmp_path / "again"), *args[5:]])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert name in result.output and "download-weights" in result.output
