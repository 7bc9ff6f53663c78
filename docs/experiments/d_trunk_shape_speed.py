"""How fast D's image trunk (and other small CNNs) learns shape from real shapes images alone: 48-class
cross-entropy, batch 16, D's augmentation. Run from the repository root after `make reproduce` (or a prepare):
    python docs/experiments/d_trunk_shape_speed.py head8 head8g1 vgg8bn vgg8 vgg8bn_b9 vgg8bn_b9_noaug
"""

import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from s2ikit.core.augment import augment_real, translate
from s2ikit.core.images import to_float
from s2ikit.metrics.judge import load_real
from s2ikit.models.discriminator import Discriminator

torch.set_num_threads(1)
data = Path("runs/shapes/data")
tr = load_real(data, "train", 32, ("shape",))
te = load_real(data, "test", 32, ("shape",))
shapes = sorted({l["shape"] for l in tr.labels})


def tens(r):
    x = to_float(r.images) if r.images.dtype == torch.uint8 else r.images
    y = torch.tensor([l["class"] for l in r.labels])
    s = torch.tensor([shapes.index(l["shape"]) for l in r.labels])
    return x, y, s


xtr, ytr, str_ = tens(tr)
xte, yte, ste = tens(te)
print(xtr.shape, xtr.min().item(), xtr.max().item())


def run(name, D, steps=1200, lr=1.6e-3, betas=(0.0, 0.9), aug=0.125):
    torch.manual_seed(0)
    head = torch.nn.Linear(D.feature_channels, 48)
    opt = torch.optim.Adam(list(D.parameters()) + list(head.parameters()), lr=lr, betas=betas)
    g = torch.Generator().manual_seed(0)
    t = time.time()
    out = []
    for step in range(1, steps + 1):
        idx = torch.randint(0, len(xtr), (16,), generator=g)
        x = translate(augment_real(xtr[idx], "dihedral", g), aug, g)
        loss = F.cross_entropy(head(D.features(x).mean((2, 3))), ytr[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 300 == 0:
            with torch.no_grad():
                pred = head(D.features(xte).mean((2, 3))).argmax(1)
            # shape of predicted class: class id = colour*8 + shape*2 + size (product order colours, shapes, sizes)
            ps = (pred // 2) % 4
            ts = (yte // 2) % 4
            out.append(
                f"{step}: class {100 * (pred == yte).float().mean():.1f} shape {100 * (ps == ts).float().mean():.1f}"
            )
    print(f"{name:40s} {time.time() - t:6.1f}s | " + " | ".join(out), flush=True)


which = sys.argv[1:]
for w in which:
    if w == "head8":
        run(w, Discriminator(256, 32, 8, "head"))
    if w == "head8g1":
        D = Discriminator(256, 32, 8, "head")
        for b in D.blocks:
            torch.nn.init.ones_(b.gamma)
        run(w, D)
    if w == "image32":
        run(w, Discriminator(256, 32, 32, "image"))
    if w == "image32g1":
        D = Discriminator(256, 32, 32, "image")
        for b in D.blocks:
            torch.nn.init.ones_(b.gamma)
        run(w, D)
    if w == "head8lr4":
        run(w, Discriminator(256, 32, 8, "head"), lr=4e-4)

from torch import nn


class Trunk(nn.Module):
    def __init__(self, body, ch, pool="mean"):
        super().__init__()
        self.body, self.feature_channels, self.pool = body, ch, pool

    def features(self, x):
        h = self.body(x)
        return h


def vgg(width, bn, pool, gn=False, blocks=4):
    layers, c = [], 3
    for out in (width, width * 2, width * 4, width * 8)[:blocks]:
        for cin in (c, out):
            norm = [nn.BatchNorm2d(out)] if bn else [nn.GroupNorm(min(4, out), out)] if gn else []
            layers += [nn.Conv2d(cin, out, 3, 1, 1)] + norm + [nn.LeakyReLU(0.2)]
        layers.append(nn.MaxPool2d(2) if pool == "max" else nn.AvgPool2d(2))
        c = out
    return Trunk(nn.Sequential(*layers), width * 2 ** (blocks - 1))


for w in which:
    if w == "vgg8bn":
        run(w, vgg(8, True, "max"))
    if w == "vgg8":
        run(w, vgg(8, False, "max"))
    if w == "vgg8avg":
        run(w, vgg(8, False, "avg"))
    if w == "vgg16":
        run(w, vgg(16, False, "max"))

for w in which:
    if w == "vgg8bn_b9":
        run(w, vgg(8, True, "max"), betas=(0.9, 0.999))
    if w == "vgg8_b9":
        run(w, vgg(8, False, "max"), betas=(0.9, 0.999))
    if w == "vgg8bn_b9_noaug":
        run(w, vgg(8, True, "max"), betas=(0.9, 0.999), aug=0.0)
    if w == "vgg8_noaug":
        run(w, vgg(8, False, "max"), aug=0.0)
    if w == "head8_b9":
        run(w, Discriminator(256, 32, 8, "head"), betas=(0.9, 0.999))
    if w == "vgg16bn_b9":
        run(w, vgg(16, True, "max"), betas=(0.9, 0.999))

for w in which:
    if w == "vgg8gn_b9":
        run(w, vgg(8, False, "max", gn=True), betas=(0.9, 0.999))
    if w == "vgg8gn":
        run(w, vgg(8, False, "max", gn=True))
    if w == "vgg16gn3":
        run(w, vgg(16, False, "max", gn=True, blocks=3))
    if w == "vgg8bn3":
        run(w, vgg(8, True, "max", blocks=3))

import s2ikit.models.discriminator as dm


class BNDown(nn.Module):
    def __init__(self, i, o):
        super().__init__()
        self.conv1 = nn.Conv2d(i, o, 4, 2, 1)
        self.bn1 = nn.BatchNorm2d(o)
        self.conv2 = nn.Conv2d(o, o, 3, 1, 1)
        self.bn2 = nn.BatchNorm2d(o)
        self.shortcut = nn.Conv2d(i, o, 1) if i != o else nn.Identity()
        self.gamma = nn.Parameter(torch.ones(1))

    def forward(self, x):
        h = F.leaky_relu(self.bn2(self.conv2(F.leaky_relu(self.bn1(self.conv1(x)), 0.2))), 0.2)
        return self.shortcut(F.avg_pool2d(x, 2)) + self.gamma * h


for w in which:
    if w.startswith("bn_"):
        plan, ndf = w.split("_")[1], int(w.split("_")[2])
        orig = dm.DownBlock
        dm.DownBlock = BNDown
        D = Discriminator(256, 32, ndf, plan)
        dm.DownBlock = orig
        run(w, D)
