"""Flips and quarter turns picked per image, for the real-image augmentation and the generator's output poses."""

from __future__ import annotations

import torch


def apply_symmetry(images: torch.Tensor, flip: torch.Tensor, turns: torch.Tensor | None = None) -> torch.Tensor:
    """Each image (b, c, h, w) mirrored left-right where `flip` (b,) is true, then turned by `turns` (b,) quarter
    turns (None: no turn). Every transform of the whole batch, picked per image: a boolean-mask index would make
    the host wait for the device."""
    images = torch.where(flip[:, None, None, None], images.flip(-1), images)
    if turns is not None:
        turns = turns[:, None, None, None]
        for k in range(1, 4):
            images = torch.where(turns == k, torch.rot90(images, k, dims=(-2, -1)), images)
    return images
