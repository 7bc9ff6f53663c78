"""Checkpoints: one dict per file, written atomically, read with weights_only=True (never executes code)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from s2ikit.utils.atomic import atomic_path
from s2ikit.utils.errors import UserError


def save(obj: dict[str, Any], path: str | Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling refusal or corruption is the file's fault
        raise UserError(f"{path}: not a loadable s2ikit checkpoint ({type(e).__name__}: {e})") from None
