"""Every checkpoint s2ikit writes: one module owns their layout, format version and safe loading.

A checkpoint is one dict in one file, written atomically, read with `weights_only=True` (a file that holds code
is refused, never run). Each carries `format` (its kind), `format_version` and `config` (the settings that
built it), so a reader never guesses the kind from the keys present:

- `encoder-state`: ENCODER_RUN/checkpoints/encoder-state.pt; networks, optimiser, scheduler, RNG, step (resume).
- `encoder`: ENCODER_RUN/checkpoints/encoder-best.pt; the selected encoders and the arguments that rebuild them.
- `gan-state`: GAN_RUN/checkpoints/gan-state.pt; G, D, EMA G, optimisers, step (resume).
- `generator`: GAN_RUN/checkpoints/generator.pt (and generators/step-N.pt, best.pt); the EMA generator, the frozen
  speech encoder, the feature recipe and the TTS settings: everything `generate` needs.

Files written before format versions existed are still read: each kind is recognised by its keys once, here.
Caches that are not checkpoints (the judge, FID reference statistics) use `save_file` / `load_file`.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from s2ikit.utils.atomic import atomic_path
from s2ikit.utils.errors import UserError

FORMAT_VERSION = 1
ENCODER_STATE, ENCODER_BEST = Path("checkpoints") / "encoder-state.pt", Path("checkpoints") / "encoder-best.pt"
GAN_STATE, GENERATOR = Path("checkpoints") / "gan-state.pt", Path("checkpoints") / "generator.pt"
KEPT_GENERATORS = Path("checkpoints") / "generators"  # every checkpoint's generator, with gan.keep_generators
BEST_GENERATOR, SELECTION = Path("checkpoints") / "best.pt", Path("checkpoints") / "selection.json"
RUN_STATUS = Path("status.json")  # how a training run ended (schedule or time budget), written when it ends

# the keys by which a file from before `format` existed is recognised as each kind
_LEGACY_KEYS = {
    "encoder-state": ("speech_encoder", "optimizer", "epoch"),
    "encoder": ("speech_encoder", "speech_args", "image_args"),
    "gan-state": ("G", "D", "G_ema", "step"),
    "generator": ("generator", "generator_args", "speech_encoder", "speech_args"),
}
KINDS = tuple(_LEGACY_KEYS)


def kept_generator(step: int) -> Path:
    return KEPT_GENERATORS / f"step-{step:07d}.pt"


def run_of(checkpoint: str | Path) -> Path | None:
    """The run folder that holds `checkpoint` (RUN/checkpoints/FILE.pt or RUN/checkpoints/generators/FILE.pt);
    None for a file outside a run's layout."""
    # the path as given first, so that a report names the run as the user did (runs/shapes/gan, not /home/...);
    # resolved when that is too short to show the layout (e.g. best.pt, from inside RUN/checkpoints)
    for folder in (Path(checkpoint).parent, Path(checkpoint).resolve().parent):
        for layout in (KEPT_GENERATORS, GENERATOR.parent):
            if folder.parts[-len(layout.parts) :] == layout.parts:
                return folder.parents[len(layout.parts) - 1]
    return None


def save_file(obj: dict[str, Any], path: str | Path) -> None:
    """Any dict of tensors and plain data, atomically (a reader sees the old file or the new one)."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_file(path: str | Path) -> dict[str, Any]:
    """Tensors and plain data only. A file that holds anything else (possibly code) is refused unopened, in one
    line: it is never worth retrying such a file with weights_only=False."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: checkpoint not found")
    if not zipfile.is_zipfile(path):  # torch.save always writes a zip archive
        raise UserError(f"{path}: not a readable s2ikit checkpoint (not a file torch.save wrote); it was not loaded")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise UserError(
            f"{path}: holds objects other than tensors and plain data (possibly code), so it is not an s2ikit "
            "checkpoint; it was not loaded"
        ) from None
    except Exception as e:  # noqa: BLE001 - a truncated or foreign file is the file's fault
        raise UserError(f"{path}: not a readable s2ikit checkpoint ({type(e).__name__}); it was not loaded") from None
    if not isinstance(obj, dict):
        raise UserError(f"{path}: not an s2ikit checkpoint (a {type(obj).__name__}, not a dict); it was not loaded")
    return obj


def save(kind: str, payload: dict[str, Any], path: str | Path, config: dict[str, Any]) -> None:
    """A checkpoint of `kind`: `payload` plus its kind, format version and the config that built it."""
    if kind not in KINDS:
        raise ValueError(f"unknown checkpoint kind {kind!r}")
    save_file({"format": kind, "format_version": FORMAT_VERSION, "config": config, **payload}, path)


def load(path: str | Path, kind: str) -> dict[str, Any]:
    """A checkpoint of `kind`, or one line saying what the file is instead."""
    obj = load_file(path)
    found = obj.get("format") or next((k for k, keys in _LEGACY_KEYS.items() if all(key in obj for key in keys)), None)
    if found != kind:
        what = f"an s2ikit '{found}' checkpoint" if found else "not an s2ikit checkpoint"
        raise UserError(f"{path}: {what}, where a '{kind}' checkpoint was expected")
    version = obj.get("format_version", 0)
    if version > FORMAT_VERSION:
        raise UserError(f"{path}: checkpoint format {version} is newer than this s2ikit reads ({FORMAT_VERSION}); "
                        "upgrade s2ikit")  # fmt: skip
    return obj


def load_state_strictly(network: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load `state` into `network`, every tensor present and of its shape; otherwise one UserError line that
    starts with `source` and names the first tensor that differs (torch's own message lists them all)."""
    own = network.state_dict()
    missing = [key for key in own if key not in state]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise UserError(f"{source}: tensor {missing[0]!r} is missing{more}")
    extra = [key for key in state if key not in own]
    if extra:
        more = f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""
        raise UserError(f"{source}: tensor {extra[0]!r} is not one the network has{more}")
    for key, tensor in own.items():
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise UserError(f"{source}: tensor {key!r} has shape {list(state[key].shape)} in the file, "
                            f"{list(tensor.shape)} in the network")  # fmt: skip
    network.load_state_dict(state)
