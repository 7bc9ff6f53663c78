"""Downloads are bounded and leave nothing behind: a trickling or overlong transfer is abandoned, a body longer
than the file can be is refused, SIGTERM removes the partial file, and a killed run's temporary file is swept by
the next. Against a local server on 127.0.0.1 that each test scripts."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from s2ikit.cli import app
from s2ikit.models import weights
from s2ikit.utils.download import DownloadError, Limits, download

runner = CliRunner()
FAST = Limits(timeout=5, deadline=30, min_rate=0, window=30)  # only what a test sets is in play


@pytest.fixture
def serve():
    """serve(path, answer) -> URL; `answer(handler)` writes the whole response. Stopped after the test."""
    routes: dict[str, Callable[[BaseHTTPRequestHandler], None]] = {}

    class Handler(BaseHTTPRequestHandler):
        timeout = 60  # a client gone silent cannot hold a server thread for ever

        def do_GET(self):
            answer = routes.get(self.path)
            if answer is None:
                self.send_error(404)
                return
            try:
                answer(self)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up, as it should

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()

    def add(path: str, answer: Callable[[BaseHTTPRequestHandler], None]) -> str:
        routes[path] = answer
        return f"http://127.0.0.1:{httpd.server_address[1]}{path}"

    yield add
    httpd.shutdown()
    httpd.server_close()


def trickle(total: int, piece: int, every: float, length: int | None = None):
    """An answer that announces `length` (default `total`) bytes and sends `total`, `piece` bytes each `every` s."""

    def answer(handler):
        handler.send_response(200)
        handler.send_header("Content-Length", str(total if length is None else length))
        handler.end_headers()
        sent = 0
        while sent < total:
            handler.wfile.write(b"x" * min(piece, total - sent))
            handler.wfile.flush()
            sent += piece
            time.sleep(every)

    return answer


def close_delimited(body: bytes):
    """An HTTP/1.0-style answer with no Content-Length: the body ends when the server hangs up."""

    def answer(handler):
        handler.send_response(200)
        handler.end_headers()
        handler.wfile.write(body)
        handler.close_connection = True

    return answer


def nothing_left(folder: Path) -> bool:
    return not folder.exists() or list(folder.iterdir()) == []


def test_a_trickling_mirror_is_abandoned(serve, tmp_path):
    url = serve("/slow.bin", trickle(100_000, 1, 0.05))  # 20 bytes/s
    started = time.monotonic()
    with pytest.raises(DownloadError, match=r"kB/s over the last 1 s, below the minimum of 1 kB/s; abandoned") as e:
        download(url, tmp_path / "out" / "slow.bin", "", limits=Limits(timeout=5, min_rate=1000, window=1))
    assert time.monotonic() - started < 5 and "\n" not in str(e.value)
    assert nothing_left(tmp_path / "out")


def test_a_transfer_past_its_deadline_is_abandoned(serve, tmp_path):
    url = serve("/long.bin", trickle(1_000_000, 2000, 0.02))  # 100 kB/s: above any rate floor, but 10 s long
    started = time.monotonic()
    with pytest.raises(DownloadError, match=r"not finished within the 0.5 s deadline \([\d,]+ bytes received\)"):
        download(url, tmp_path / "out" / "long.bin", "", limits=Limits(deadline=0.5, window=30))
    assert time.monotonic() - started < 3
    assert nothing_left(tmp_path / "out")


def test_a_body_longer_than_the_file_can_be_is_refused(serve, tmp_path):
    dest = tmp_path / "out" / "file.bin"
    body = os.urandom(5000)
    # announced: refused before a byte of the body is read
    url = serve("/announced.bin", trickle(5000, 5000, 0))
    with pytest.raises(DownloadError, match=r"announces 5,000 bytes, more than the file can hold \(1,000\)"):
        download(url, dest, "", max_bytes=1000, limits=FAST)
    # not announced: cut off once it runs past the bound
    url = serve("/unannounced.bin", close_delimited(body))
    with pytest.raises(DownloadError, match=r"sent more than the 1,000 bytes the file can hold; cut off and refused"):
        download(url, dest, "", max_bytes=1000, limits=FAST)
    assert nothing_left(dest.parent)
    # the same body within its bound (and with its hash) is saved
    url = serve("/fits.bin", close_delimited(body))
    download(url, dest, hashlib.sha256(body).hexdigest()[:8], max_bytes=5000, limits=FAST)
    assert dest.read_bytes() == body and [p.name for p in dest.parent.iterdir()] == ["file.bin"]
    # the standard files carry their bound
    assert all(entry.max_bytes and entry.max_bytes < 200 << 20 for entry in weights.STANDARD.values())


def test_sigterm_mid_download_leaves_no_temporary_file(serve, tmp_path):
    for entry in weights.STANDARD.values():  # 50 MB announced, 64 kB every 50 ms: still running when stopped
        mirror = serve(f"/mirror/{entry.name}", trickle(50 << 20, 64 << 10, 0.05)).rsplit("/", 1)[0]
    dest = tmp_path / "dest"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), weights.MIRROR_ENV: mirror,
           "TORCH_HOME": str(tmp_path / "torch"), "OMP_NUM_THREADS": "1"}  # fmt: skip
    env.pop(weights.OFFLINE_ENV, None)
    cmd = [sys.executable, "-m", "s2ikit", "download-weights", "--dest", str(dest)]
    process = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not any(p.name.startswith(".") and p.stat().st_size > 0 for p in dest.glob(".*.tmp-*")):
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 128 + signal.SIGTERM, err
    assert "stopped by SIGTERM; the partial file was removed" in err and "Traceback" not in err
    assert list(dest.iterdir()) == []


def test_a_killed_runs_temporary_file_is_swept_by_the_next(serve, tmp_path, monkeypatch):
    dest = tmp_path / "dest"
    dest.mkdir()
    bodies = {}
    for key, real in weights.STANDARD.items():
        body = os.urandom(3000)
        name = f"{real.name.rsplit('-', 1)[0]}-{hashlib.sha256(body).hexdigest()[:8]}.pth"
        base = serve(f"/mirror/{name}", close_delimited(body)).rsplit("/", 1)[0]
        monkeypatch.setitem(weights.STANDARD, key, weights.WeightFile(name, base, real.what, real.patterns, 10_000))
        bodies[name] = body
    monkeypatch.delenv(weights.OFFLINE_ENV, raising=False)
    monkeypatch.delenv(weights.MIRROR_ENV, raising=False)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        names = sorted(bodies)
        stale, running = dest / f".{names[0]}.tmp-{int(dead.stdout)}", dest / f".{names[1]}.tmp-{live.pid}"
        stale.write_bytes(b"x" * 50_000)
        running.write_bytes(b"y")
        result = runner.invoke(app, ["download-weights", "--dest", str(dest), "--min-rate", "0"])
        assert result.exit_code == 0, result.output
        assert not stale.exists() and running.exists()  # another process's download is left to it
        assert sorted(p.name for p in dest.iterdir()) == sorted([*names, running.name])
        assert all((dest / name).read_bytes() == body for name, body in bodies.items())
    finally:
        live.kill()
        live.wait()


def test_limits_are_flags_with_their_defaults_in_help():
    shown = runner.invoke(app, ["download-weights", "--help"], terminal_width=200).output
    for flag in ("--timeout", "--deadline", "--min-rate", "--rate-window"):
        assert flag in shown
    assert "below 10 kB/s" in shown and "[default: 10.0]" in shown
    result = runner.invoke(app, ["download-weights", "--min-rate", "-1"])
    assert result.exit_code == 2 and "--min-rate" in result.output
