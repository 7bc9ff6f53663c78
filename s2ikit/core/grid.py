"""Image grids with the caption under each picture (sample grids during training, reports, `generate`), and the
checks that keep `generate`'s grid from landing on a file it must not replace."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont

from s2ikit.audio.limits import GRID_COLUMNS
from s2ikit.core.images import to_pil
from s2ikit.utils.atomic import atomic_path
from s2ikit.utils.errors import UserError

_PNG = b"\x89PNG\r\n\x1a\n"


def save_grid(images: torch.Tensor, captions: list[str], path: str | Path, columns: int = 8, cell: int = 128) -> Path:
    """Each image scaled to `cell` px with up to three lines of its caption beneath; written atomically."""
    return _save(list(zip(range(len(images)), images.detach().cpu(), captions)), path, columns, cell)


def save_rows(images: torch.Tensor, labels: list[str], path: str | Path, cell: int = 128) -> Path:
    """(N, num, 3, S, S) images, one input's `num` images per row, wrapping after GRID_COLUMNS onto rows of its
    own: the grid is at most GRID_COLUMNS cells wide whatever `num` is."""
    num = images.shape[1]
    columns = min(num, GRID_COLUMNS) if num > 1 else min(GRID_COLUMNS, len(labels))
    per_input = -(-num // columns) * columns  # each input starts a new row
    images = images.detach().cpu()
    cells = [
        (i * per_input + k if num > 1 else i, images[i, k], label) for i, label in enumerate(labels) for k in range(num)
    ]
    return _save(cells, path, columns, cell)


def _save(cells: list[tuple[int, torch.Tensor, str]], path: str | Path, columns: int, cell: int) -> Path:
    """Draw (slot, image, caption) cells, slot s at row s // columns, column s % columns."""
    font = ImageFont.load_default()
    line_height, chars = 11, max(cell // 6, 8)
    text_height = 3 * line_height + 4
    rows = (max((slot for slot, _, _ in cells), default=-1) + columns) // columns
    grid = Image.new("RGB", (columns * cell, rows * (cell + text_height)), "white")
    draw = ImageDraw.Draw(grid)
    for slot, image, caption in cells:
        x, y = (slot % columns) * cell, (slot // columns) * (cell + text_height)
        grid.paste(to_pil(image).resize((cell, cell), Image.Resampling.NEAREST), (x, y))
        for j, line in enumerate(textwrap.wrap(caption, chars)[:3]):
            draw.text((x + 2, y + cell + 2 + j * line_height), line, fill="black", font=font)
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            grid.save(tmp, format="PNG")
    except OSError as e:  # a folder made read-only, or removed, since the check
        raise UserError(f"{path}: cannot write the grid ({e.strerror or e})") from None
    return path


def check_grid_path(path: Path, overwrite: bool, inputs: Sequence[Path], flag: str = "-o") -> None:
    """One line naming `flag` when the grid cannot, or must not, be written at `path`: not a .png name, one of
    `inputs` (the model, the recordings; never, even with `overwrite`), a folder, an existing file that is not a
    PNG, an existing PNG without `overwrite`, or a folder that cannot be written in."""
    shown = f"{flag} {path}"
    try:
        _check_grid_path(path, shown, overwrite, inputs)
    except OSError as e:  # e.g. a folder on the way that this user may not enter
        raise UserError(f"{shown}: cannot reach it ({e.strerror or e})") from None


def _check_grid_path(path: Path, shown: str, overwrite: bool, inputs: Sequence[Path]) -> None:
    for source in inputs:
        if path.exists() and Path(source).exists() and os.path.samefile(path, source):
            raise UserError(f"{shown}: is an input of this command ({source}); choose another name")
    if path.is_dir():
        raise UserError(f"{shown}: is a folder; give a file name, e.g. {path / 'generated.png'}")
    if path.suffix.lower() != ".png":
        raise UserError(f"{shown}: the grid is a PNG image; give a name ending in .png")
    if path.exists():
        if not path.is_file() or not _is_png(path):
            raise UserError(f"{shown}: exists and is not a PNG image; generate does not write over it")
        if not overwrite:
            raise UserError(f"{shown}: exists; --overwrite replaces it")
    folder = next((p for p in path.absolute().parents if p.exists()), Path("/"))
    if not folder.is_dir():
        raise UserError(f"{shown}: {folder} is a file, not a folder")
    if not _may_write(folder):
        raise UserError(f"{shown}: cannot write in {folder} (permission denied)")


def _may_write(folder: Path) -> bool:
    return os.access(folder, os.W_OK | os.X_OK)


def _is_png(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(len(_PNG)) == _PNG
    except OSError:
        return False
