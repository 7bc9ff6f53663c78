"""Image grids with the caption under each picture (sample grids during training, reports, `generate`)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont

from s2ikit.core.images import to_pil
from s2ikit.utils.atomic import atomic_path


def save_grid(images: torch.Tensor, captions: list[str], path: str | Path, columns: int = 8, cell: int = 128) -> Path:
    """Each image scaled to `cell` px with up to three lines of its caption beneath; written atomically."""
    font = ImageFont.load_default()
    line_height, chars = 11, max(cell // 6, 8)
    text_height = 3 * line_height + 4
    rows = (len(images) + columns - 1) // columns
    grid = Image.new("RGB", (columns * cell, rows * (cell + text_height)), "white")
    draw = ImageDraw.Draw(grid)
    images = images.detach().cpu()  # one device -> host copy for the grid, not one per image
    for i, (image, caption) in enumerate(zip(images, captions)):
        x, y = (i % columns) * cell, (i // columns) * (cell + text_height)
        grid.paste(to_pil(image).resize((cell, cell), Image.Resampling.NEAREST), (x, y))
        for j, line in enumerate(textwrap.wrap(caption, chars)[:3]):
            draw.text((x + 2, y + cell + 2 + j * line_height), line, fill="black", font=font)
    path = Path(path)
    with atomic_path(path) as tmp:
        grid.save(tmp, format="PNG")
    return path
