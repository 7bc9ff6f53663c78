"""`diversity`: do the images of one caption vary with the noise as much as real images of its class do?

Beyond the paper (DiverGAN, by the same authors, measures diversity with LPIPS, whose weights cannot be had
offline). For each test caption, `evaluate.diversity_images` images from different z (the first is the one the
other metrics judge); their mean pairwise distance, divided by the mean pairwise distance between real test
images of the caption's class (up to `evaluate.diversity_real_per_class` of them; every test image when the data
set has no classes; a class with a single test image is compared with all of them). 1.0: as varied as the real
images; 0: one picture per caption. Two spaces: pixels (L2 at
the generator's size, images in [-1, 1]) and the judge's penultimate features (when the data set has a judge).
"""

from __future__ import annotations

from typing import Any

import torch

from s2ikit.core.images import resize
from s2ikit.core.inference import generate_images
from s2ikit.metrics.base import Generated, Metric, MetricSkipped, register
from s2ikit.metrics.class_accuracy import shared_judge

ALL = -(10**9)  # the pool of every test image, whatever its class


def mean_pairwise_distance(x: torch.Tensor) -> float:
    """x (n, ...) -> mean L2 distance over the n (n - 1) / 2 pairs."""
    flat = x.flatten(1).double()
    n = flat.shape[0]
    if n < 2:
        return float("nan")
    d = torch.cdist(flat, flat)
    return float(d.sum() / (n * (n - 1)))


def _pct(value: float) -> str:
    return f"{value:.2f}"


@register
class Diversity(Metric):
    name, title = "diversity", "Diversity: images of one caption from different z"
    headline = ("ratio",)

    def setup(self) -> None:
        config = self.ctx.config
        if config.diversity_images < 2:
            raise MetricSkipped("evaluate.diversity_images is below 2")
        self.k, self.size = config.diversity_images, self.ctx.bundle.generator.image_size
        has_judge = self.ctx.data.has_classes or bool(config.judge_attributes)
        self.judge = shared_judge(self.ctx) if has_judge else None
        self.captions: list[dict[str, Any]] = []  # per caption: class, pixel and feature diversity
        self.real: dict[int, list[torch.Tensor]] = {}  # class -> real images (uint8 would do; few are kept)
        self.seen: set[str] = set()
        self.grid: list[tuple[str, torch.Tensor]] = []

    def _spaces(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        spaces = {"pixels": images.float().cpu()}
        if self.judge is not None:
            spaces["judge_features"] = self.judge.features(images).cpu()
        return spaces

    def update(self, generated: Generated) -> None:
        batch, ctx = generated.batch, self.ctx
        images = generate_images(ctx.bundle, generated.speech, self.k, ctx.config.seed, generated.first_row)
        for i, group in enumerate(images):  # (k, 3, S, S) per caption
            cls = int(batch["class_id"][i])
            record = {"class": cls}
            for space, x in self._spaces(group).items():
                record[space] = mean_pairwise_distance(x)
            self.captions.append(record)
            if len(self.grid) < ctx.config.grid_captions and all(t != batch["text"][i] for t, _ in self.grid):
                self.grid.append((batch["text"][i], group.cpu()))
        for i, key in enumerate(batch["key"]):
            if key in self.seen:
                continue
            self.seen.add(key)
            image = resize(batch["image"][i : i + 1].float(), self.size)[0]
            for group in (int(batch["class_id"][i]), ALL):  # its class, and the pool of every test image
                bank = self.real.setdefault(group, [])
                if len(bank) < ctx.config.diversity_real_per_class * (8 if group == ALL else 1):
                    bank.append(image)

    def compute(self) -> dict[str, Any]:
        spaces = ("pixels", "judge_features") if self.judge is not None else ("pixels",)
        spread = {}
        for group, bank in self.real.items():
            if len(bank) >= 2:
                stack = torch.stack(bank).to(self.ctx.device)
                spread[group] = {space: mean_pairwise_distance(x) for space, x in self._spaces(stack).items()}
        # a class with a single test image has no spread of its own: it is compared with all test images
        classes = sorted({c["class"] for c in self.captions})
        reference = {cls: spread.get(cls, spread.get(ALL, {})) for cls in classes}
        ratio: dict[str, float] = {}
        per_class: dict[str, dict[str, float]] = {}
        for space in spaces:
            ratios = [c[space] / reference[c["class"]][space] for c in self.captions
                      if reference[c["class"]].get(space, 0) > 0]  # fmt: skip
            ratio[space] = sum(ratios) / len(ratios) if ratios else float("nan")
            for cls in classes:
                mine = [c[space] for c in self.captions if c["class"] == cls]
                ref = reference[cls].get(space, 0)
                if mine and ref > 0:
                    per_class.setdefault(self._class_name(cls), {})[space] = sum(mine) / len(mine) / ref
        return {"ratio": ratio, "per_class": per_class, "images_per_caption": self.k, "captions": len(self.captions),
                "real_per_class": self.ctx.config.diversity_real_per_class,
                "classes_with_own_reference": sum(cls in spread for cls in classes)}  # fmt: skip

    def _class_name(self, cls: int) -> str:
        data = self.ctx.data
        if cls in data.class_ids:
            return data.classes[data.class_ids.index(cls)]
        return "all test images" if cls < 0 else str(cls)

    def summary(self, r: dict[str, Any]) -> str:
        shown = ", ".join(f"{space.replace('_', ' ')} {_pct(v)}" for space, v in r["ratio"].items())
        return f"diversity (1.0: as varied as real images): {shown}"

    def section(self, r: dict[str, Any]) -> list[str]:
        spaces = list(r["ratio"])
        lines = [
            f"Mean pairwise distance of {r['images_per_caption']} images per caption (different z), over that of "
            f"up to {r['real_per_class']} real test images of the caption's class: 1.0 is as varied as the real "
            "images, 0 is one picture per caption. "
            + "; ".join(f"{space.replace('_', ' ')} **{_pct(v)}**" for space, v in r["ratio"].items())
            + f" ({r['captions']} captions).",
            "",
            "| class | " + " | ".join(s.replace("_", " ") for s in spaces) + " |",
            "|---|" + "---|" * len(spaces),
        ]
        for name, values in r["per_class"].items():
            lines.append(f"| {name} | " + " | ".join(_pct(values.get(s, float("nan"))) for s in spaces) + " |")
        lines += ["", "![diversity](diversity.png)"]
        return lines

    def figures(self) -> dict[str, tuple[torch.Tensor, list[str], int]]:
        if not self.grid:
            return {}
        images = torch.cat([group for _, group in self.grid])
        captions = [text for text, group in self.grid for _ in range(group.shape[0])]
        return {"diversity.png": (images, captions, self.k)}
