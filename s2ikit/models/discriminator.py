"""Fusion-S2iGan discriminator (Sect. 4.1.2), after DF-GAN.

Image encoder: conv3x3 (stride 1) then residual down blocks, each conv4x4 stride 2 -> LeakyReLU(0.2) -> conv3x3
-> LeakyReLU(0.2), scaled by a learnt gain (DF-GAN's gamma, `residual_init` at the start), plus a residual
shortcut (1x1 conv + average pooling), down to 4x4; at 256 px and ndf = 64 the six blocks have 64, 128, 256,
512, 1024, 1024 filters, i.e. multipliers 1, 2, 4, 8, 16, 16 of ndf. The paper
gives only that plan; below 256 px there are fewer blocks, and `plan` says which end of it they keep:
"image" (the first entries: ndf channels at full resolution, doubling as the map shrinks, as DF-GAN does) or
"head" (the last entries: the 4x4 features keep 16 ndf channels, at the cost of 8-16 ndf at full resolution).
Conditional head: the speech embedding tiled to 4x4 and concatenated -> (C + D, 4, 4) -> conv3x3 -> LeakyReLU
-> conv4x4 -> one score.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

PLAN_256 = (1, 2, 4, 8, 16, 16)  # filter multipliers of ndf, six down blocks at 256 px
PLANS = ("image", "head")


def channel_plan(image_size: int, plan: str = "image") -> tuple[int, ...]:
    """Filter multipliers of ndf for the down blocks at `image_size` (32..256, a power of two)."""
    if image_size < 32 or image_size > 256 or image_size & (image_size - 1):
        raise ValueError(f"image_size must be a power of two in [32, 256], got {image_size}")
    if plan not in PLANS:
        raise ValueError(f"discriminator plan must be image|head, got {plan}")
    n_blocks = int(math.log2(image_size // 4))
    return PLAN_256[:n_blocks] if plan == "image" else PLAN_256[-n_blocks:]


class DownBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, residual_init: float = 0.0):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 4, 2, 1)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1)
        self.shortcut = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()
        # DF-GAN starts the residual branch switched off (0): D is then a linear map of the pooled image until
        # gamma grows, which MA-GP can keep it from doing (`residual_init`)
        self.gamma = nn.Parameter(torch.full((1,), float(residual_init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.conv2(F.leaky_relu(self.conv1(x), 0.2)), 0.2)
        # pooling before the 1x1 shortcut is the same linear map on a quarter of the pixels
        return self.shortcut(F.avg_pool2d(x, 2)) + self.gamma * h


class Discriminator(nn.Module):
    def __init__(
        self,
        cond_dim: int = 1024,
        image_size: int = 256,
        ndf: int = 64,
        plan: str = "image",
        residual_init: float = 0.0,
    ):
        super().__init__()
        multipliers = channel_plan(image_size, plan)
        chans = [multipliers[0] * ndf] + [m * ndf for m in multipliers]
        self.stem = nn.Conv2d(3, chans[0], 3, 1, 1)
        pairs = zip(chans[:-1], chans[1:], strict=True)
        self.blocks = nn.Sequential(*(DownBlock(c_in, c_out, residual_init) for c_in, c_out in pairs))
        self.feature_channels = chans[-1]
        self.head = nn.Sequential(
            nn.Conv2d(chans[-1] + cond_dim, 2 * ndf, 3, 1, 1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(2 * ndf, 1, 4, 1, 0),
        )

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, feature_channels, 4, 4) image features, computed once and scored with several conditions."""
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
