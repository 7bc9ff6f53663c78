"""Verified downloads: stream a URL to a temporary name beside the target, check its sha256, then rename.

A wrong hash, a connection cut short, a timeout, an interrupt or a SIGTERM leaves nothing at the target and no
temporary file behind; a temporary file that a killed process (SIGKILL, power cut) left is removed by the next
download of the same file. A transfer is bounded: a body larger than the file can be is cut off and refused, and
a mirror that trickles (slower than `Limits.min_rate` over `Limits.window`) or runs past `Limits.deadline` is
abandoned. The expected hash follows torch.hub's naming convention: a file called `name-<hex>.ext` is one
whose sha256 starts with `<hex>` (torch.hub's `HASH_REGEX`, `-([a-f0-9]*)\\.`, read by `check_hash=True`).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import signal
import sys
import threading
import time
import urllib.error
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.request import Request, urlopen

from s2ikit import __version__
from s2ikit.utils.atomic import atomic_path, file_sha256, remove_stale_temps_of
from s2ikit.utils.checks import at_least, checked, positive
from s2ikit.utils.errors import UserError

# torch.hub's HASH_REGEX, with at least 8 digits: a shorter run (or none) is a version, not a hash.
_HASH_IN_NAME = re.compile(r"-([a-f0-9]{8,})\.")
CHUNK = 1 << 20  # bytes read per step: small enough for a smooth progress bar, large enough to be cheap


@dataclass(frozen=True)
@checked("download", timeout=positive, deadline=positive, min_rate=at_least(0), window=positive)
class Limits:
    """When a transfer is abandoned (nothing is saved then)."""

    timeout: float = 30.0  # s: the longest wait for the connection or for any single read
    deadline: float = 3600.0  # s: the whole transfer; the standard files take about a minute on a slow line
    min_rate: float = 10_000.0  # bytes/s, averaged over `window`; a mirror slower than this is abandoned; 0 = none
    window: float = 30.0  # s: the span the rate is averaged over (a short stall does not abandon a transfer)


class Terminated(SystemExit):
    """SIGTERM arrived during a download: exits as the signal would (status 143), once the temporary file is gone."""


class DownloadError(UserError):
    """The transfer failed: no network, connection refused, timeout, an HTTP error, or a body cut short."""


class HashMismatch(UserError):
    """A file's sha256 does not start with the hash its name carries."""


def hash_in_name(name: str) -> str | None:
    """The sha256 prefix a file name carries (`inception_v3_google-0cc3c7bd.pth` -> `0cc3c7bd`), if any."""
    match = _HASH_IN_NAME.search(name)
    return match.group(1) if match else None


def matches_its_name(path: str | os.PathLike) -> bool | None:
    """Whether a file's sha256 starts with the hash in its name; None when its name carries no hash."""
    prefix = hash_in_name(Path(path).name)
    return None if prefix is None else file_sha256(path).startswith(prefix)


def download(
    url: str,
    dest: str | os.PathLike,
    sha256_prefix: str,
    *,
    max_bytes: int | None = None,
    limits: Limits = Limits(),
    progress: bool | None = None,
) -> Path:
    """Fetch `url` to `dest` if its sha256 starts with `sha256_prefix`; otherwise leave `dest` untouched.

    `max_bytes`: the most the file can hold; a larger announced size, or a body that runs past it, is refused.
    `limits`: the per-operation timeout, the overall deadline and the minimum rate (see `Limits`).
    `progress`: show a bar with size, speed and time left on stderr; None shows it when stderr is a terminal.
    Raises DownloadError (network, limits) or HashMismatch, each one line naming the URL.
    """
    dest = Path(dest)
    if progress is None:
        progress = sys.stderr.isatty()
    remove_stale_temps_of(dest)
    request = Request(url, headers={"User-Agent": f"s2ikit/{__version__}"})
    try:
        with _sigterm_raises(), atomic_path(dest) as tmp:
            with urlopen(request, timeout=limits.timeout) as response, open(tmp, "wb") as out:
                length = response.headers.get("Content-Length", "")
                total = int(length) if length.isdigit() else None
                if total is not None and max_bytes is not None and total > max_bytes:
                    raise DownloadError(f"{url}: the server announces {total:,} bytes, more than the file can hold "
                                        f"({max_bytes:,}); refused, nothing saved")  # fmt: skip
                digest = hashlib.sha256()
                with _bar(dest.name, total, progress) as advance:
                    for chunk in _body(url, response, max_bytes, limits):
                        out.write(chunk)
                        digest.update(chunk)
                        advance(len(chunk))
                received = out.tell()
                # http.client returns a short body without complaint when the server closes early
                if total is not None and received != total:
                    raise DownloadError(f"{url}: connection closed after {received} of {total} bytes; nothing saved")
                if not digest.hexdigest().startswith(sha256_prefix):
                    raise HashMismatch(
                        f"{url}: sha256 {digest.hexdigest()[:16]}... does not start with {sha256_prefix}, the hash "
                        f"its name carries: refused, nothing saved"
                    )
                out.flush()
                os.fsync(out.fileno())
    except urllib.error.HTTPError as e:
        raise DownloadError(f"{url}: HTTP {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        raise DownloadError(f"{url}: {_reason(e.reason)}") from None
    except (http.client.HTTPException, ConnectionError, TimeoutError) as e:
        raise DownloadError(f"{url}: {_reason(e)}") from None
    except Terminated:
        print(f"{url}: stopped by SIGTERM; the partial file was removed", file=sys.stderr, flush=True)
        raise
    return dest


def _body(url: str, response: http.client.HTTPResponse, max_bytes: int | None, limits: Limits) -> Iterator[bytes]:
    """The response's bytes as they arrive, abandoned past `max_bytes`, the deadline, or below the minimum rate."""
    started = window_started = time.monotonic()
    received = window_received = 0
    # read1 returns what has arrived (read would wait for a whole chunk), so a trickle is measured as it comes
    while chunk := response.read1(CHUNK if max_bytes is None else min(CHUNK, max_bytes + 1 - received)):
        received += len(chunk)
        if max_bytes is not None and received > max_bytes:
            raise DownloadError(f"{url}: the server sent more than the {max_bytes:,} bytes the file can hold; "
                                "cut off and refused, nothing saved")  # fmt: skip
        yield chunk
        now = time.monotonic()
        if now - started > limits.deadline:
            raise DownloadError(f"{url}: not finished within the {limits.deadline:g} s deadline ({received:,} bytes "
                                "received); abandoned, nothing saved")  # fmt: skip
        if now - window_started >= limits.window:
            rate = (received - window_received) / (now - window_started)
            if rate < limits.min_rate:
                slow = f"{rate / 1000:.2f} kB/s over the last {now - window_started:.0f} s"
                raise DownloadError(f"{url}: {slow}, below the minimum of {limits.min_rate / 1000:g} kB/s; abandoned, "
                                    "nothing saved")  # fmt: skip
            window_started, window_received = now, received


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """While a download runs, SIGTERM raises `Terminated` so that the temporary file is removed on the way out
    (by default SIGTERM ends the process at once, leaving it). Only in the main thread (the only one a handler
    can be set from) and only when nobody else handles SIGTERM: a program with its own handler keeps it."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return

    def terminate(signum: int, frame: object) -> None:
        raise Terminated(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _reason(error: object) -> str:
    if isinstance(error, TimeoutError):
        return "timed out"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__


@contextmanager
def _bar(name: str, total: int | None, show: bool) -> Iterator[Callable[[int], None]]:
    if not show:
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, TimeRemainingColumn(), console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(name, total=total)
        yield lambda n: bar.advance(task, n)
