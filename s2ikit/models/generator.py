"""Fusion-S2iGan generator (Sect. 4.1.1, eqs. 3-6).

h0 = FC(z) reshaped to (8 ngf, 4, 4);  h1 = F1(h0, s);  h_i = F_i(up2(h_{i-1}), s);  o = tanh(conv3x3(ReLU(h_last))).
F_i is a dual-residual speech-visual fusion block: VSFM -> ReLU -> conv3x3 -> VSFM -> ReLU -> conv3x3, plus a
shortcut (1x1 conv when the channel count changes). The block count follows the resolution: 4 px doubled
(n_blocks - 1) times; the channel plan is anchored at the output as in DF-GAN (the last block has ngf channels):
256 px -> 8,8,8,8,4,2,1 (seven blocks); 64 px -> 8,8,4,2,1.
Ablations: block "vsfm" | "dfgan" (DF-GAN's affine fusion); modules "dual" (two per block) | "single" (one).
Condition of every block's fusion: "speech" (s, the paper's eqs. 4-5) or "noise+speech" (cat(z, s), as DF-GAN's
code feeds its affine MLPs, so z modulates every layer and not only the first FC). `smm_hidden`: the width of
the fusion MLPs, 0 = each module's channel count (see models/fusion.py).
Beyond the paper, `output_symmetry` "flip" | "dihedral": o is mirrored (and turned by quarter turns) by one of
the 2 (8) symmetries, picked by z's first component, for data sets whose distribution those symmetries leave
unchanged (shapes). The network then needs to draw only one pose of each picture; z supplies the others.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from s2ikit.models.fusion import VSFM, DFGANFusion
from s2ikit.models.symmetry import apply_symmetry

PLAN_256 = (8, 8, 8, 8, 4, 2, 1)  # channel multipliers of ngf for the seven blocks at 256 px
CONDITIONS = ("speech", "noise+speech")
POSES = {"none": 1, "flip": 2, "dihedral": 8}  # output_symmetry -> the size of its group


def channel_plan(image_size: int) -> tuple[int, ...]:
    """Multipliers for the blocks at `image_size` (32..256, a power of two), anchored at the output."""
    if image_size < 32 or image_size > 256 or image_size & (image_size - 1):
        raise ValueError(f"image_size must be a power of two in [32, 256], got {image_size}")
    n_blocks = int(math.log2(image_size // 4)) + 1
    return PLAN_256[-n_blocks:]


class FusionBlock(nn.Module):
    """Dual-residual speech-visual fusion block (Fig. 2c)."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        cond_dim: int,
        block: str,
        modules: str,
        fusion: str,
        attention: str,
        smm_hidden: int = 256,
    ):
        super().__init__()

        def fuse(ch: int) -> nn.Module:
            if block == "vsfm":
                return VSFM(ch, cond_dim, fusion, attention, smm_hidden)
            if block == "dfgan":
                return DFGANFusion(ch, cond_dim, smm_hidden)
            raise ValueError(f"block must be vsfm|dfgan, got {block}")

        if modules not in ("dual", "single"):
            raise ValueError(f"modules must be dual|single, got {modules}")
        self.fuse1 = fuse(in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, 1, 1)
        self.fuse2 = fuse(out_ch) if modules == "dual" else None
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1)
        self.shortcut = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()
        self.activation = (lambda x: x) if block == "dfgan" else F.relu  # DF-GAN's fusion ends in its own LeakyReLU

    def forward(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        h = self.conv1(self.activation(self.fuse1(x, s)))
        h = self.fuse2(h, s) if self.fuse2 is not None else h
        h = self.conv2(self.activation(h))
        return self.shortcut(x) + h


class Generator(nn.Module):
    def __init__(
        self,
        cond_dim: int = 1024,
        image_size: int = 256,
        ngf: int = 32,
        z_dim: int = 100,
        block: str = "vsfm",
        modules: str = "dual",
        fusion: str = "wfm",
        attention: str = "pam",
        smm_hidden: int = 256,
        condition: str = "speech",
        output_symmetry: str = "none",
    ):
        super().__init__()
        if condition not in CONDITIONS:
            raise ValueError(f"condition must be speech|noise+speech, got {condition}")
        if output_symmetry not in POSES:
            raise ValueError(f"output_symmetry must be {'|'.join(POSES)}, got {output_symmetry}")
        plan = channel_plan(image_size)
        self.z_dim, self.image_size, self.condition = z_dim, image_size, condition
        fusion_dim = cond_dim + z_dim if condition == "noise+speech" else cond_dim
        self.fc = nn.Linear(z_dim, plan[0] * ngf * 4 * 4)
        self.first_channels = plan[0] * ngf
        chans = [plan[0] * ngf] + [m * ngf for m in plan]
        self.blocks = nn.ModuleList(
            FusionBlock(chans[i], chans[i + 1], fusion_dim, block, modules, fusion, attention, smm_hidden)
            for i in range(len(plan))
        )
        self.to_rgb = nn.Conv2d(ngf, 3, 3, 1, 1)
        self.output_symmetry = output_symmetry
        # z[:, 0] ~ N(0, 1) cut at these quantiles falls in each of the n poses with probability 1/n; a buffer
        # outside the state dict, so that checkpoints stay the same whatever the setting
        n = POSES[output_symmetry]
        edges = torch.distributions.Normal(0.0, 1.0).icdf(torch.arange(1, n) / n)
        self.register_buffer("pose_edges", edges, persistent=False)

    def forward(self, z: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        h = self.fc(z).view(z.shape[0], self.first_channels, 4, 4)  # eq. 3
        if self.condition == "noise+speech":
            s = torch.cat([z, s], dim=1)  # DF-GAN's order
        for i, block in enumerate(self.blocks):
            if i > 0:
                h = F.interpolate(h, scale_factor=2, mode="nearest")  # eq. 5: h_{i-1} upsampled
            h = block(h, s)  # eqs. 4-5
        return self.pose(torch.tanh(self.to_rgb(F.relu(h))), z)  # eq. 6

    def pose(self, images: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """`images` under the symmetry that each row's z picks (output_symmetry; "none": as they are)."""
        if self.output_symmetry == "none":
            return images
        k = (z[:, :1] > self.pose_edges).sum(1)  # the pose, 0..n-1
        return apply_symmetry(images, k % 2 == 1, k // 2 if self.output_symmetry == "dihedral" else None)
