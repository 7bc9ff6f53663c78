"""Image tensor conversions, in one place: s2ikit's images are float (3, H, W) in [-1, 1]."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """To `size` px: area-averaged when shrinking (as real images reach the discriminator), bilinear when growing."""
    if images.shape[-1] == size:
        return images
    mode = "area" if images.shape[-1] > size else "bilinear"
    return F.interpolate(images, size=(size, size), mode=mode)


def to_uint8(images: torch.Tensor, size: int | None = None) -> torch.Tensor:
    """[-1, 1] -> uint8 (optionally resized first)."""
    if size is not None:
        images = resize(images, size)
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 -> [-1, 1]."""
    return images.float() / 127.5 - 1.0


def to_pil(image: torch.Tensor) -> Image.Image:
    """(3, H, W) in [-1, 1] -> RGB PIL image."""
    array = to_uint8(image.detach().cpu()).permute(1, 2, 0).numpy()
    return Image.fromarray(np.ascontiguousarray(array))
