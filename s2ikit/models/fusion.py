"""The visual+speech fusion module, VSFM (Fusion-S2iGan, Sect. 4.2), and the substitutes of its ablations.

VSFM (eqs. 7-8):  F' = BN(F);  F'' = F' + M_f(M_p(F'), M_s(F', s))
PAM  (eqs. 9-10): PA = sigmoid(conv1x1(ReLU(BN(conv3x3(F'))))) in R^{1xHxW};  M_p(F') = F' * PA
SMM  (eqs. 11-13): WA = MLP(ReLU(MLP(s))), BA = MLP(ReLU(MLP(s))) in R^{Cx1x1};  M_s(F', s) = F' * WA + BA
WFM  (eqs. 14-18): IF = M_p + M_s;  WF = softmax over the two branches of MLP(GELU(MLP(GAP(IF)))) in R^{Cx2};
                   M_f = WF_1 * M_p + WF_2 * M_s
The paper does not give the width of SMM's MLPs: `smm_hidden` sets it, 0 meaning the block's channel count
(DF-GAN's affine MLPs); the paper presets state 256.
Ablation switches (paper Tables 3-6): fusion "wfm" | "add" | "product"; attention "pam" | "none".
`DFGANFusion` is DF-GAN's affine fusion block (gamma/beta MLPs, LeakyReLU, twice) for the "dfgan" block study.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PixelAttention(nn.Module):
    """PAM, eqs. 9-10."""

    def __init__(self, channels: int, reduction: int = 8):
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.conv = nn.Conv2d(channels, hidden, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(hidden)
        self.out = nn.Conv2d(hidden, 1, 1)

    def attention_map(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn(self.conv(x)))
        # the 1x1 conv to one channel as a weighted channel sum: the same map, without a conv kernel's overhead
        # on a handful of input channels (several times faster on CPU)
        return torch.sigmoid((h * self.out.weight).sum(dim=1, keepdim=True) + self.out.bias.view(1, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.attention_map(x)


def _mlp(cond_dim: int, channels: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(cond_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels))


class SpeechModulation(nn.Module):
    """SMM, eqs. 11-13. The scale starts at 1 and the shift at 0, so an untrained block passes F' through.
    `hidden` is the MLPs' width; 0 = `channels`."""

    def __init__(self, channels: int, cond_dim: int, hidden: int = 256):
        super().__init__()
        hidden = hidden or channels
        self.scale = _mlp(cond_dim, channels, hidden)
        self.shift = _mlp(cond_dim, channels, hidden)
        for mlp, bias in ((self.scale, 1.0), (self.shift, 0.0)):
            nn.init.zeros_(mlp[-1].weight)
            nn.init.constant_(mlp[-1].bias, bias)

    def forward(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return x * self.scale(s)[:, :, None, None] + self.shift(s)[:, :, None, None]


class WeightedFusion(nn.Module):
    """WFM, eqs. 14-18: per-channel softmax weights over the two branches."""

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, 2 * channels)

    def weights(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """(B, 2, C): softmax across the two branches for every channel."""
        pooled = (a + b).mean(dim=(2, 3))
        return torch.softmax(self.fc2(F.gelu(self.fc1(pooled))).view(-1, 2, a.shape[1]), dim=1)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        w = self.weights(a, b)
        return w[:, 0, :, None, None] * a + w[:, 1, :, None, None] * b


class VSFM(nn.Module):
    """Visual+speech fusion module, eqs. 7-8, with the ablation switches."""

    def __init__(
        self, channels: int, cond_dim: int, fusion: str = "wfm", attention: str = "pam", smm_hidden: int = 256
    ):
        super().__init__()
        if fusion not in ("wfm", "add", "product") or attention not in ("pam", "none"):
            raise ValueError(f"fusion must be wfm|add|product and attention pam|none, got {fusion}, {attention}")
        self.bn = nn.BatchNorm2d(channels)
        self.pam = PixelAttention(channels) if attention == "pam" else None
        self.smm = SpeechModulation(channels, cond_dim, smm_hidden)
        self.wfm = WeightedFusion(channels) if fusion == "wfm" else None
        self.fusion = fusion

    def forward(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        x = self.bn(x)
        if self.fusion == "wfm" and self.pam is not None:
            return self._fused_pam_wfm(x, s)
        attended = self.pam(x) if self.pam is not None else x
        modulated = self.smm(x, s)
        if self.fusion == "wfm":
            fused = self.wfm(attended, modulated)
        elif self.fusion == "add":
            fused = attended + modulated
        else:
            fused = attended * modulated
        return x + fused

    def _fused_pam_wfm(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """Eqs. 8-18 with PAM and WFM, the same arithmetic in fewer full-size passes (it is memory-bound):
        GAP(IF) = mean(F' * PA) + WA * mean(F') + BA needs no IF map, and
        F' + WF1 * (F' * PA) + WF2 * (F' * WA + BA) = F' * (1 + WF2 * WA + WF1 * PA) + WF2 * BA.
        """
        pa = self.pam.attention_map(x)  # (B, 1, H, W)
        scale, shift = self.smm.scale(s), self.smm.shift(s)  # (B, C)
        hw = x.shape[2] * x.shape[3]
        # sums, not means: a mean's backward spends a full-size division on spreading its gradient
        pooled = (torch.einsum("bchw,bhw->bc", x, pa[:, 0]) + scale * x.sum(dim=(2, 3))) / hw + shift
        w = torch.softmax(self.wfm.fc2(F.gelu(self.wfm.fc1(pooled))).view(-1, 2, x.shape[1]), dim=1)
        w1, w2 = w[:, 0, :, None, None], w[:, 1, :, None, None]
        gain = torch.addcmul(1 + w2 * scale[:, :, None, None], w1, pa)  # (B, C, H, W)
        return torch.addcmul(w2 * shift[:, :, None, None], x, gain)


class DFGANFusion(nn.Module):
    """DF-GAN's fusion: Affine -> LeakyReLU -> Affine -> LeakyReLU. DF-GAN's affine transform (gamma and beta
    MLPs of the condition) is the same operation as SMM's scale and shift, so SMM serves as both."""

    def __init__(self, channels: int, cond_dim: int, hidden: int = 256):
        super().__init__()
        self.affine1 = SpeechModulation(channels, cond_dim, hidden)
        self.affine2 = SpeechModulation(channels, cond_dim, hidden)

    def forward(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(self.affine1(x, s), 0.2)
        return F.leaky_relu(self.affine2(x, s), 0.2)
