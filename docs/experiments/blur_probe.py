"""How much of shape the frozen image encoder still reads in a low-passed image: the real test images at 32 px
(as G draws them), average-pooled k x and scaled back up, each matched to the nearest class centroid of the
training captions' speech embeddings (oracle_centroids.py); the share whose nearest centroid is their class
and their shape (shapes class ids: 8 colour + 2 shape + size).

    python docs/experiments/blur_probe.py ENCODER_RUN DATA_DIR CENTROIDS.pt
"""

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from s2ikit.config import LoaderConfig
from s2ikit.core.factories import load_encoders
from s2ikit.data.loader import make_loader


def low_pass(images: torch.Tensor, k: int) -> torch.Tensor:
    """As gan.matching_blur does it (the patch): average-pool k x, bilinear back to the size."""
    if k <= 1:
        return images
    return F.interpolate(F.avg_pool2d(images, k), scale_factor=k, mode="bilinear", align_corners=False)


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("encoder_run", type=Path)
    parser.add_argument("data", type=Path)
    parser.add_argument("centroids", type=Path)
    args = parser.parse_args()
    encoders, _ = load_encoders(args.encoder_run)
    centroids = F.normalize(torch.load(args.centroids, weights_only=True), dim=1)
    image_encoder = nn.Sequential(nn.Upsample(size=(64, 64), mode="bilinear"), encoders.image).eval()
    images, classes = [], []
    for batch in make_loader(args.data, LoaderConfig(split="test", mode="test", batch_size=64)):
        images.append(F.interpolate(batch["image"], size=(32, 32), mode="area"))
        classes.append(batch["class_id"])
    x, y = torch.cat(images), torch.cat(classes)
    for k in (1, 2, 4):
        nearest = (F.normalize(image_encoder(low_pass(x, k)).float(), dim=1) @ centroids.T).argmax(1)
        shape = (nearest // 2) % 4 == (y // 2) % 4
        print(f"pooled {k}x: class {100 * (nearest == y).float().mean():.1f}%, shape {100 * shape.float().mean():.1f}%")


if __name__ == "__main__":
    main()
