"""Image encoders for speech-image matching (S2IGAN's image side).

`InceptionImageEncoder`: torchvision Inception-v3 with ImageNet weights, frozen and always in eval mode;
images resized to 299; Mixed_7c average-pooled (2048) -> trainable Linear(2048, embed_dim) -> L2 norm.
`ConvImageEncoder`: a small CNN trained from scratch, for data sets without suitable pretrained weights
(the embedded shapes set, offline machines).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from s2ikit.models.weights import STANDARD, entry_for, find_or_fetch, hub_checkpoints, verified


class InceptionImageEncoder(nn.Module):
    def __init__(self, weights: str | Path, embed_dim: int = 1024):
        super().__init__()
        from torchvision.models import inception_v3

        # transform_input=False: our images are already in [-1, 1], the range the Google weights were trained on.
        net = inception_v3(weights=None, aux_logits=True, init_weights=False, transform_input=False)
        net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        net.fc = nn.Identity()  # the pooled Mixed_7c output, 2048-d
        net.AuxLogits = None
        net.aux_logits = False
        self.backbone = net.requires_grad_(False).eval()
        self.proj = nn.Linear(2048, embed_dim)

    def train(self, mode: bool = True) -> InceptionImageEncoder:
        super().train(mode)
        self.backbone.eval()  # frozen: BatchNorm statistics and dropout stay in inference mode
        return self

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, 3, H, W) in [-1, 1] -> (B, 2048) pooled Mixed_7c."""
        x = F.interpolate(images, size=(299, 299), mode="bilinear", align_corners=False)
        return self.backbone(x)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.proj(self.features(images)), dim=1)


class ConvImageEncoder(nn.Module):
    """VGG-style: four stages of two conv3x3 + BN + ReLU and a 2x2 max-pool; global average and max pooling
    concatenated; projection; L2 norm. It learns shape, not only colour and size, which strided convolutions with
    average pooling were slow to learn (docs/experiments/shapes-encoder.md)."""

    def __init__(self, embed_dim: int = 1024, width: int = 16):
        super().__init__()
        self.body = vgg_body(width)
        self.proj = nn.Linear(2 * width * 8, embed_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.proj(mean_max_pool(self.body(images))), dim=1)


def vgg_body(width: int) -> nn.Sequential:
    """Four stages of two conv3x3 + BN + ReLU and a 2x2 max-pool; 8 x width channels out."""
    layers, channels = [], 3
    for out in (width, width * 2, width * 4, width * 8):
        for c_in in (channels, out):
            layers += [nn.Conv2d(c_in, out, 3, 1, 1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
        layers.append(nn.MaxPool2d(2))
        channels = out
    return nn.Sequential(*layers)


def mean_max_pool(h: torch.Tensor) -> torch.Tensor:
    """Global average and max pooling, concatenated: (B, C, H, W) -> (B, 2C)."""
    return torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1)


def find_weights(explicit: str | Path, patterns: tuple[str, ...], what: str, missing_hint: str) -> Path:
    """A weights file: the explicit path when given (never fetched over), else the first match of `patterns`
    in the torch hub cache, checked against the hash its name carries; a standard file (models.weights) that
    is missing there is fetched into it on first use."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: {what} weights not found")
        return path
    entry = entry_for(patterns)
    if entry is not None:
        return find_or_fetch(entry, what=what, hint=missing_hint)
    hub = hub_checkpoints()
    found = [p for pattern in patterns for p in sorted(hub.glob(pattern))]
    if not found:
        raise FileNotFoundError(f"no {what} weights in {hub}: {missing_hint}")
    return verified(found[0])


def find_inception_weights(explicit: str | Path = "") -> Path:
    """The Inception-v3 ImageNet state dict: an explicit path, else torchvision's file in the torch hub cache
    (fetched there on first use)."""
    hint = "pass --image-weights PATH, or use the from-scratch encoder (--set encoder.image_encoder=cnn)"
    return find_weights(explicit, STANDARD["inception_v3"].patterns, "Inception-v3", hint)


def build_image_encoder(kind: str, embed_dim: int, cnn_width: int = 16, weights: str | Path = "") -> nn.Module:
    if kind == "inception_v3":
        return InceptionImageEncoder(find_inception_weights(weights), embed_dim)
    if kind == "cnn":
        return ConvImageEncoder(embed_dim, cnn_width)
    raise ValueError(f"unknown image encoder {kind!r} (inception_v3, cnn)")


def trainable_state(encoder: nn.Module) -> dict[str, torch.Tensor]:
    """What a checkpoint must hold: everything but a frozen pretrained backbone (rebuilt from its weights file)."""
    return {k: v for k, v in encoder.state_dict().items() if not k.startswith("backbone.")}
