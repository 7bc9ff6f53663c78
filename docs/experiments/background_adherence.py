"""Do the generated shapes images keep the background their caption names? (shapes data set only)

Three of the eight caption templates name the background ("dark grey", "grey", "light grey"). For each test
caption that does, `--num` images are generated the way `s2ikit evaluate` draws them (the same z), the grey of
each image's outer 2-pixel ring is read, and the image counts as right when that grey is nearer the named
shade's level than either other level. Also prints how often the images of one caption differ in shade.

    python docs/experiments/background_adherence.py runs/shapes/gan/checkpoints/best.pt --num 4
"""

from __future__ import annotations

import argparse
import re

import torch

from s2ikit.config import LoaderConfig
from s2ikit.core.inference import generate_images, load_bundle
from s2ikit.data.dataset_info import read_dataset
from s2ikit.data.loader import make_loader
from s2ikit.data.sources.shapes import BACKGROUNDS

NAMED = re.compile(r"(light grey|dark grey|grey)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a generator checkpoint or a GAN run")
    parser.add_argument("--num", type=int, default=4, help="images per caption")
    parser.add_argument("--seed", type=int, default=0, help="evaluate.seed")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    bundle = load_bundle(args.checkpoint)
    data = read_dataset(bundle.info["data"])
    loader = make_loader(data.root, LoaderConfig(split="test", mode="test", batch_size=64))
    names = sorted(BACKGROUNDS, key=BACKGROUNDS.get)
    levels = torch.tensor([BACKGROUNDS[n] for n in names], dtype=torch.float)
    right = total = mixed = captions = row = 0
    for batch in loader:
        speech = bundle.speech_encoder(batch["mel"], batch["mel_lengths"]).float()
        images = generate_images(bundle, speech, args.num, args.seed, first_row=row)  # (B, k, 3, S, S)
        row += speech.shape[0]
        for text, group in zip(batch["text"], images):
            found = NAMED.search(text)
            if not found:
                continue
            ring = torch.cat(
                [
                    group[..., :2, :].flatten(2),
                    group[..., -2:, :].flatten(2),
                    group[..., 2:-2, :2].flatten(2),
                    group[..., 2:-2, -2:].flatten(2),
                ],
                dim=2,
            )
            grey = (ring.mean(dim=(1, 2)) + 1) * 127.5  # (k,) in 0..255
            nearest = (grey[:, None] - levels[None]).abs().argmin(dim=1)
            right += int((nearest == names.index(found.group(1))).sum())
            total += group.shape[0]
            mixed += int(nearest.unique().numel() > 1)
            captions += 1
    print(
        f"{captions} test captions name the background; {right}/{total} images "
        f"({100 * right / total:.1f}%) keep it; chance 33%; the images of {mixed} captions "
        f"({100 * mixed / captions:.1f}%) come in more than one shade"
    )


if __name__ == "__main__":
    main()
