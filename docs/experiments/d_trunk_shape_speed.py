"""How fast D's image trunk (and other small CNNs) learns shape from real shapes images alone: 48-class
cross-entropy, batch 16, D's augmentation. Run from the repository root after `make reproduce` (or a prepare):
    python docs/experiments/d_trunk_shape_speed.py head8 head8g1 vgg8bn vgg8 vgg8bn_b9 vgg8bn_b9_noaug
Each named variant is built and trained in the order given (see VARIANTS for the names).
"""

import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import s2ikit.models.discriminator as dm
from s2ikit.core.augment import augment_real, translate
from s2ikit.core.images import to_float
from s2ikit.metrics.judge import load_real
from s2ikit.models.discriminator import Discriminator

torch.set_num_threads(1)
DATA = Path("runs/shapes/data")


def tensors(split):
    real = load_real(DATA, split, 32, ("shape",))
    images = to_float(real.images) if real.images.dtype == torch.uint8 else real.images
    return images, torch.tensor([label["class"] for label in real.labels])


def shape_of(class_id):
    """Class ids follow product(colours, shapes, sizes): id = colour * 8 + shape * 2 + size."""
    return (class_id // 2) % 4


def run(name, D, x_train, y_train, x_test, y_test, steps=1200, lr=1.6e-3, betas=(0.0, 0.9), aug=0.125):
    torch.manual_seed(0)
    head = nn.Linear(D.feature_channels, 48)
    opt = torch.optim.Adam(list(D.parameters()) + list(head.parameters()), lr=lr, betas=betas)
    g = torch.Generator().manual_seed(0)
    start, out = time.time(), []
    for step in range(1, steps + 1):
        idx = torch.randint(0, len(x_train), (16,), generator=g)
        x = translate(augment_real(x_train[idx], "dihedral", g), aug, g)
        loss = F.cross_entropy(head(D.features(x).mean((2, 3))), y_train[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 300 == 0:
            with torch.no_grad():
                pred = head(D.features(x_test).mean((2, 3))).argmax(1)
            class_acc = 100 * (pred == y_test).float().mean()
            shape_acc = 100 * (shape_of(pred) == shape_of(y_test)).float().mean()
            out.append(f"{step}: class {class_acc:.1f} shape {shape_acc:.1f}")
    print(f"{name:40s} {time.time() - start:6.1f}s | " + " | ".join(out), flush=True)


class Trunk(nn.Module):
    """A plain body behind the `features` / `feature_channels` interface that `run` reads of D."""

    def __init__(self, body, channels):
        super().__init__()
        self.body, self.feature_channels = body, channels

    def features(self, x):
        return self.body(x)


def vgg(width, norm=None, pool="max", blocks=4):
    """Two conv3x3 a stage (norm None | "batch" | "group"), LeakyReLU, then a 2x2 pool; width doubles a stage."""
    layers, c = [], 3
    for out in (width, width * 2, width * 4, width * 8)[:blocks]:
        for cin in (c, out):
            normed = {"batch": [nn.BatchNorm2d(out)], "group": [nn.GroupNorm(min(4, out), out)]}.get(norm, [])
            layers += [nn.Conv2d(cin, out, 3, 1, 1), *normed, nn.LeakyReLU(0.2)]
        layers.append(nn.MaxPool2d(2) if pool == "max" else nn.AvgPool2d(2))
        c = out
    return Trunk(nn.Sequential(*layers), width * 2 ** (blocks - 1))


def residual_on(D):
    """DF-GAN's blocks start with their residual branch off (gamma = 0); switch it on."""
    for block in D.blocks:
        nn.init.ones_(block.gamma)
    return D


class BNDown(nn.Module):
    """D's DownBlock with BatchNorm after each conv and the residual branch on."""

    def __init__(self, i, o):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(i, o, 4, 2, 1), nn.BatchNorm2d(o)
        self.conv2, self.bn2 = nn.Conv2d(o, o, 3, 1, 1), nn.BatchNorm2d(o)
        self.shortcut = nn.Conv2d(i, o, 1) if i != o else nn.Identity()
        self.gamma = nn.Parameter(torch.ones(1))

    def forward(self, x):
        h = F.leaky_relu(self.bn2(self.conv2(F.leaky_relu(self.bn1(self.conv1(x)), 0.2))), 0.2)
        return self.shortcut(F.avg_pool2d(x, 2)) + self.gamma * h


def with_bn_blocks(plan, ndf):
    original, dm.DownBlock = dm.DownBlock, BNDown
    try:
        return Discriminator(256, 32, ndf, plan)
    finally:
        dm.DownBlock = original


B9 = {"betas": (0.9, 0.999)}  # Adam's defaults, against D's (0, 0.9)
VARIANTS = {  # name -> (network builder, run settings)
    "head8": (lambda: Discriminator(256, 32, 8, "head"), {}),
    "head8g1": (lambda: residual_on(Discriminator(256, 32, 8, "head")), {}),
    "head8lr4": (lambda: Discriminator(256, 32, 8, "head"), {"lr": 4e-4}),
    "head8_b9": (lambda: Discriminator(256, 32, 8, "head"), B9),
    "image32": (lambda: Discriminator(256, 32, 32, "image"), {}),
    "image32g1": (lambda: residual_on(Discriminator(256, 32, 32, "image")), {}),
    "bn_head_8": (lambda: with_bn_blocks("head", 8), {}),
    "bn_image_16": (lambda: with_bn_blocks("image", 16), {}),
    "bn_image_32": (lambda: with_bn_blocks("image", 32), {}),
    "vgg8": (lambda: vgg(8), {}),
    "vgg8avg": (lambda: vgg(8, pool="avg"), {}),
    "vgg16": (lambda: vgg(16), {}),
    "vgg8bn": (lambda: vgg(8, "batch"), {}),
    "vgg8bn3": (lambda: vgg(8, "batch", blocks=3), {}),
    "vgg8gn": (lambda: vgg(8, "group"), {}),
    "vgg16gn3": (lambda: vgg(16, "group", blocks=3), {}),
    "vgg8_b9": (lambda: vgg(8), B9),
    "vgg8bn_b9": (lambda: vgg(8, "batch"), B9),
    "vgg16bn_b9": (lambda: vgg(16, "batch"), B9),
    "vgg8gn_b9": (lambda: vgg(8, "group"), B9),
    "vgg8_noaug": (lambda: vgg(8), {"aug": 0.0}),
    "vgg8bn_b9_noaug": (lambda: vgg(8, "batch"), {**B9, "aug": 0.0}),
}

if __name__ == "__main__":
    names = sys.argv[1:]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown or not names:
        sys.exit(f"variants: {' '.join(VARIANTS)} (unknown: {' '.join(unknown) or 'none given'})")
    x_train, y_train = tensors("train")
    x_test, y_test = tensors("test")
    for name in names:
        build, settings = VARIANTS[name]
        run(name, build(), x_train, y_train, x_test, y_test, **settings)
