"""Verified downloads: stream a URL to a temporary name beside the target, check its sha256, then rename.

A wrong hash, a connection cut short, a timeout or an interrupt leaves nothing at the target and no temporary
file behind. The expected hash follows torch.hub's naming convention: a file called `name-<hex>.ext` is one
whose sha256 starts with `<hex>` (torch.hub's `HASH_REGEX`, `-([a-f0-9]*)\\.`, read by `check_hash=True`).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import sys
import urllib.error
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.request import Request, urlopen

from s2ikit import __version__
from s2ikit.utils.atomic import atomic_path, file_sha256
from s2ikit.utils.errors import UserError

# torch.hub's HASH_REGEX, with at least 8 digits: a shorter run (or none) is a version, not a hash.
_HASH_IN_NAME = re.compile(r"-([a-f0-9]{8,})\.")
CHUNK = 1 << 20  # bytes read per step: small enough for a smooth progress bar, large enough to be cheap


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
    timeout: float = 30.0,
    progress: bool | None = None,
) -> Path:
    """Fetch `url` to `dest` if its sha256 starts with `sha256_prefix`; otherwise leave `dest` untouched.

    `timeout` is in seconds per network operation (connect, each read), not for the whole transfer.
    `progress`: show a bar with size, speed and time left on stderr; None shows it when stderr is a terminal.
    Raises DownloadError (network) or HashMismatch, each one line naming the URL.
    """
    dest = Path(dest)
    if progress is None:
        progress = sys.stderr.isatty()
    request = Request(url, headers={"User-Agent": f"s2ikit/{__version__}"})
    try:
        with atomic_path(dest) as tmp:
            with urlopen(request, timeout=timeout) as response, open(tmp, "wb") as out:
                length = response.headers.get("Content-Length", "")
                total = int(length) if length.isdigit() else None
                digest, received = hashlib.sha256(), 0
                with _bar(dest.name, total, progress) as advance:
                    while chunk := response.read(CHUNK):
                        out.write(chunk)
                        digest.update(chunk)
                        received += len(chunk)
                        advance(len(chunk))
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
    return dest


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
