"""Fusion-S2iGan discriminator (Sect. 4.1.2), after DF-GAN.

Image encoder: conv3x3 (stride 1) then residual down blocks, each conv4x4 stride 2 -> LeakyReLU(0.2) -> conv3x3
-> LeakyReLU(0.2) plus a residual shortcut (1x1 conv + average pooling), down to (16 ndf, 4, 4); at 256 px and
ndf = 64 the six blocks have 64, 128, 256, 512, 1024, 1024 filters, i.e. multipliers 1, 2, 4, 8, 16, 16 of ndf
(fewer blocks at lower resolutions, anchored at the 4x4 end). Conditional head: the speech embedding tiled to 4x4
and concatenated -> (16 ndf + D, 4, 4) -> conv3x3 -> LeakyReLU -> conv4x4 -> one score.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

PLAN_256 = (1, 2, 4, 8, 16, 16)  # filter multipliers of ndf, six down blocks at 256 px


class DownBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 4, 2, 1)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1)
        self.shortcut = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()
        self.gamma = nn.Parameter(torch.zeros(1))  # DF-GAN: the residual branch starts switched off

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.conv2(F.leaky_relu(self.conv1(x), 0.2)), 0.2)
        return F.avg_pool2d(self.shortcut(x), 2) + self.gamma * h


class Discriminator(nn.Module):
    def __init__(self, cond_dim: int = 1024, image_size: int = 256, ndf: int = 64):
        super().__init__()
        if image_size < 32 or image_size > 256 or image_size & (image_size - 1):
            raise ValueError(f"image_size must be a power of two in [32, 256], got {image_size}")
        n_blocks = int(math.log2(image_size // 4))
        plan = PLAN_256[-n_blocks:]
        self.stem = nn.Conv2d(3, plan[0] * ndf, 3, 1, 1)
        chans = [plan[0] * ndf] + [m * ndf for m in plan]
        self.blocks = nn.Sequential(*(DownBlock(chans[i], chans[i + 1]) for i in range(n_blocks)))
        self.feature_channels = chans[-1]
        self.head = nn.Sequential(
            nn.Conv2d(chans[-1] + cond_dim, 2 * ndf, 3, 1, 1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(2 * ndf, 1, 4, 1, 0),
        )

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 16 ndf, 4, 4) image features, computed once and scored with several conditions."""
        return self.blocks(self.stem(images))

    def score(self, features: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        tiled = s[:, :, None, None].expand(-1, -1, features.shape[2], features.shape[3])
        return self.head(torch.cat([features, tiled], dim=1)).view(-1)

    def forward(
        self, images: torch.Tensor, s: torch.Tensor, s_extra: torch.Tensor | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Scores of (images, s); with `s_extra`, also of the same images with other speech (one feature pass)."""
        features = self.features(images)
        if s_extra is None:
            return self.score(features, s)
        return self.score(features, s), self.score(features, s_extra)
