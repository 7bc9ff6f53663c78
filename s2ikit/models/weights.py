"""The two standard Inception-v3 weight files, found in the torch hub cache or fetched there on first use.

torchvision's ImageNet Inception-v3 feeds the image encoder and S2IGAN's mAP/R@k; torch-fidelity's TF-ported
Inception feeds FID and IS. Each lives under its usual name in `torch.hub.get_dir()/checkpoints`, where
torchvision and torch-fidelity would put it too, and each name carries the start of the file's sha256, which
is checked after every download and before every use. `S2IKIT_OFFLINE=1` forbids fetching;
`S2IKIT_WEIGHTS_MIRROR=URL` fetches `URL/<file name>` instead of the publishers' addresses.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from s2ikit.utils.atomic import remove_stale_temps_of
from s2ikit.utils.download import (
    DownloadError,
    HashMismatch,
    Limits,
    download,
    hash_in_name,
    matches_its_name,
)

OFFLINE_ENV = "S2IKIT_OFFLINE"
MIRROR_ENV = "S2IKIT_WEIGHTS_MIRROR"
AHEAD = "or run `s2ikit download-weights` on a machine with a network and copy the files there"


@dataclass(frozen=True)
class WeightFile:
    name: str  # file name in the hub cache; its hex suffix is the start of the file's sha256
    base_url: str  # where the publisher hosts it: the file is base_url/name
    what: str  # what it is and what needs it, for doctor and messages
    patterns: tuple[str, ...]  # cache names accepted in its place: other releases of the same weights
    max_bytes: int | None = None  # a bound on its size (a little above it): a longer body is cut off and refused

    @property
    def sha256_prefix(self) -> str:
        prefix = hash_in_name(self.name)
        if prefix is None:
            raise ValueError(f"{self.name}: a standard weight file's name must carry its sha256 prefix")
        return prefix


# URLs as in torchvision.models.inception (Inception_V3_Weights.IMAGENET1K_V1) and
# torch_fidelity.feature_extractor_inceptionv3 (URL_INCEPTION_V3).
STANDARD: dict[str, WeightFile] = {
    "inception_v3": WeightFile(
        "inception_v3_google-0cc3c7bd.pth",
        "https://download.pytorch.org/models",
        "torchvision Inception-v3 (encoder, mAP, R@k)",
        ("inception_v3_google-*.pth",),
        112 << 20,  # the file is about 104 MiB
    ),
    "fidelity_inception": WeightFile(
        "weights-inception-2015-12-05-6726825d.pth",
        "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0",
        "torch-fidelity Inception (FID, IS)",
        ("weights-inception-2015-12-05-*.pth", "pt_inception-2015-12-05-*.pth"),  # pytorch-fid's copy too
        100 << 20,  # the file is about 91 MiB
    ),
}


class WeightsUnavailable(FileNotFoundError, DownloadError):
    """Not in the cache and not fetchable now (offline, no network): a missing file, and a one-line user error."""


def hub_checkpoints() -> Path:
    """Where torch.hub keeps weight files: $TORCH_HOME/hub/checkpoints (default ~/.cache/torch/hub/checkpoints)."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def offline() -> bool:
    return os.environ.get(OFFLINE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def source_url(entry: WeightFile) -> str:
    base = os.environ.get(MIRROR_ENV, "").strip() or entry.base_url
    return f"{base.rstrip('/')}/{entry.name}"


def entry_for(patterns: tuple[str, ...]) -> WeightFile | None:
    """The standard file a caller's cache patterns describe, if any."""
    from fnmatch import fnmatch

    return next((e for e in STANDARD.values() if any(fnmatch(e.name, p) for p in patterns)), None)


def in_cache(entry: WeightFile, folder: Path) -> list[Path]:
    """Files in `folder` that stand for `entry`: its own name first, then other accepted names in order."""
    own = folder / entry.name
    found = [p for pattern in entry.patterns for p in sorted(folder.glob(pattern)) if p != own]
    return ([own] if own.is_file() else []) + found


def verified(path: Path) -> Path:
    """`path` if its sha256 matches the hash its name carries (or its name carries none); else one-line error."""
    if matches_its_name(path) is False:
        raise HashMismatch(
            f"{path}: sha256 does not start with {hash_in_name(path.name)}, the hash its name carries (damaged or "
            "truncated): run `s2ikit download-weights` to replace it, or delete it"
        )
    return path


def find_or_fetch(entry: WeightFile, folder: Path | None = None, what: str = "", hint: str = "") -> Path:
    """The verified cached file for `entry`, downloaded into `folder` (default: the hub cache) when missing.

    `what` names the weights in messages (default: entry.what); `hint` is the caller's other way out,
    e.g. "pass --image-weights PATH".
    """
    folder = folder or hub_checkpoints()
    found = in_cache(entry, folder) if folder.is_dir() else []
    if found:
        return verified(found[0])
    if offline():
        raise _offline(entry, folder, what, hint)
    folder.mkdir(parents=True, exist_ok=True)
    with _locked(folder):  # the processes of a multi-GPU run fetch once: the first fetches, the rest wait
        found = in_cache(entry, folder)
        return verified(found[0]) if found else fetch(entry, folder, what, hint)


def fetch(
    entry: WeightFile, folder: Path | None = None, what: str = "", hint: str = "", limits: Limits = Limits()
) -> Path:
    """Download `entry` into `folder` (replacing any file of its name) and check its hash; `limits`: when a slow
    or stalled transfer is abandoned."""
    folder = folder or hub_checkpoints()
    if offline():
        raise _offline(entry, folder, what, hint)
    url = source_url(entry)
    print(f"fetching {url} -> {folder / entry.name}", file=sys.stderr, flush=True)
    try:
        return download(url, folder / entry.name, entry.sha256_prefix, max_bytes=entry.max_bytes, limits=limits)
    except HashMismatch:
        raise
    except DownloadError as e:
        raise WeightsUnavailable(
            f"no {what or entry.what} weights in {folder}, and fetching failed: {e}. Download it there by hand, "
            + AHEAD
            + (f", or {hint}" if hint else "")
        ) from None


def _offline(entry: WeightFile, folder: Path, what: str, hint: str) -> WeightsUnavailable:
    return WeightsUnavailable(
        f"no {what or entry.what} weights in {folder} and {OFFLINE_ENV} is set: download {source_url(entry)} into "
        f"{folder}, {AHEAD}" + (f", or {hint}" if hint else "")
    )


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """An exclusive lock on the folder itself, so no lock file is left behind; none where flock is missing."""
    try:
        import fcntl

        fd = os.open(folder, os.O_RDONLY)
    except (ImportError, OSError):
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:
            pass  # some network file systems refuse: each process then fetches on its own, still atomically
        yield
    finally:
        os.close(fd)  # releases the lock


def download_standard(folder: Path | None = None, limits: Limits = Limits()) -> list[tuple[WeightFile, Path, bool]]:
    """Every standard file in `folder` (default: the hub cache): (entry, path, whether it was fetched now).

    A file already there whose hash checks out is kept; a damaged one is fetched again over it, and one whose
    name carries no hash to check is left alone beside the fetched file. Temporary files that an earlier, killed
    download left are removed first.
    """
    folder = folder or hub_checkpoints()
    done = []
    for entry in STANDARD.values():
        remove_stale_temps_of(folder / entry.name)
        found = [p for p in in_cache(entry, folder) if matches_its_name(p)] if folder.is_dir() else []
        done.append((entry, found[0], False) if found else (entry, fetch(entry, folder, limits=limits), True))
    return done
