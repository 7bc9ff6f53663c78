"""Image classifier with one head per label (class, or attributes such as colour / shape / size).

The judge behind `s2ikit evaluate`'s class accuracy: trained on real images, it says whether a generated image
shows what its caption describes. Same VGG-style body as `ConvImageEncoder`, which learns shape (not only
colour) quickly on small images.
"""

from __future__ import annotations

import torch
from torch import nn

from s2ikit.models.image_encoder import mean_max_pool, vgg_body


class ImageClassifier(nn.Module):
    def __init__(self, heads: dict[str, int], width: int = 32):
        super().__init__()
        self.body = vgg_body(width)
        self.heads = nn.ModuleDict({name: nn.Linear(2 * width * 8, n) for name, n in heads.items()})

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, 3, H, W) in [-1, 1] -> the pooled features every head reads (B, 16 width)."""
        return mean_max_pool(self.body(images))

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """images (B, 3, H, W) in [-1, 1] -> logits per head."""
        h = self.features(images)
        return {name: head(h) for name, head in self.heads.items()}
