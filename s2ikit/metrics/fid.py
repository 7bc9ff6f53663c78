"""`fid` and `inception_score`: torch-fidelity's Inception-v3 over the generated images (metrics/fidelity.py).

One Inception pass per batch serves both metrics. FID's real-image statistics are the explicit, cached `ref`
file of the data set's test split at the generator's size. Two reference protocols (`evaluate.fid_protocol`):
S2IGAN's, the evaluation pass's images (one per test caption) against every real test image once; DF-GAN's,
`evaluate.fid_images` images generated from the test captions (cycled, new z each cycle) against the test images
enlarged to about as many by flips and shifts.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from s2ikit.config import LoaderConfig
from s2ikit.core.checkpoints import load_file, save_file
from s2ikit.core.images import resize
from s2ikit.data.loader import first_rows, make_loader
from s2ikit.metrics import fidelity
from s2ikit.metrics.base import Context, Generated, Metric, MetricSkipped, measure, register


def _extractor(ctx: Context) -> tuple[fidelity.FidelityFeatures, Path]:
    if "fidelity" not in ctx.shared:
        try:
            path = fidelity.find_fidelity_weights(ctx.fidelity_weights)
        except FileNotFoundError as e:
            ctx.shared["fidelity"] = e
        else:
            ctx.shared["fidelity"] = (fidelity.FidelityFeatures(path).to(ctx.device), path)
    found = ctx.shared["fidelity"]
    if isinstance(found, Exception):
        raise MetricSkipped(str(found))
    return found


def _features(generated: Generated, extractor: fidelity.FidelityFeatures) -> tuple[torch.Tensor, torch.Tensor]:
    if "fidelity" not in generated.cache:
        generated.cache["fidelity"] = extractor(generated.images)
    return generated.cache["fidelity"]


@register
class FID(Metric):
    name, title = "fid", "FID"
    headline = ("value",)

    def setup(self) -> None:
        self.extractor, self.weights = _extractor(self.ctx)
        self.fid = fidelity.FrechetDistance()
        self.protocol = self.ctx.config.fid_protocol
        self.generated = 0

    def update(self, generated: Generated) -> None:
        if self.protocol == "s2igan":  # DF-GAN's protocol draws its own images (compute)
            self._add(_features(generated, self.extractor)[0])

    def _add(self, features: torch.Tensor) -> None:
        self.fid.update(features, real=False)
        self.generated += features.shape[0]

    def _generate_dfgan(self) -> None:
        """`fid_images` images from the test captions, cycled; each cycle continues the caption rows, so its z
        are new."""
        ctx, target = self.ctx, self.ctx.config.fid_images

        class Sink(Metric):
            def update(sink, generated: Generated) -> None:
                features = self.extractor(generated.images)[0]
                self._add(features[: target - self.generated])

        def batches():
            while self.generated < target:
                yield from make_loader(ctx.data.root, LoaderConfig(split="test", mode="test", batch_size=64))

        def until_enough():
            for batch in batches():
                if self.generated >= target:
                    return
                yield batch

        measure(ctx.bundle, until_enough(), [Sink(ctx)], 1, ctx.config.seed)

    def _reference(self) -> Path:
        ctx, size = self.ctx, self.ctx.bundle.generator.image_size
        copies = 1
        if self.protocol == "dfgan":
            copies = max(1, math.ceil(ctx.config.fid_images / ctx.data.splits["test"].samples))
        split = "test" if copies == 1 else f"test-dfgan{copies}"
        ref = fidelity.reference_path(ctx.data.root, ctx.data.dataset, ctx.data.sha256, split, size)
        if ref.is_file():
            self.fid.load_real_statistics(load_file(ref))
            return ref
        ctx.log(f"fid ref: real test images at {size} px ({copies} views each) -> {ref}")
        seen: set[str] = set()
        for batch in make_loader(ctx.data.root, LoaderConfig(split="test", mode="test", batch_size=64)):
            rows = first_rows(batch["key"], seen)  # every image once, however many captions it has
            if rows:
                real = batch["image"][rows]
                real = resize(real, size) if real.shape[-1] > size else real
                for view in range(copies):
                    shown = enlarged_view(real, view).to(ctx.device)
                    self.fid.update(self.extractor(shown)[0], real=True)
        save_file(self.fid.real_statistics(), ref)
        return ref

    def compute(self) -> dict[str, Any]:
        if self.protocol == "dfgan":
            self._generate_dfgan()
        ref = self._reference()
        return {"value": self.fid.compute(), "real_images": int(self.fid.metric.real_features_num_samples),
                "generated_images": self.generated, "extractor": fidelity.EXTRACTOR, "weights": str(self.weights),
                "protocol": fidelity.PROTOCOL, "protocol_name": self.protocol,
                "real_resized_to": self.ctx.bundle.generator.image_size, "reference": str(ref)}  # fmt: skip

    def summary(self, r: dict[str, Any]) -> str:
        return f"FID {r['value']:.2f}"

    def section(self, r: dict[str, Any]) -> list[str]:
        return [
            f"FID **{r['value']:.2f}** ({r['generated_images']} generated vs {r['real_images']} real test images, "
            f"real images resized to {r['real_resized_to']} px first; {r['protocol']}; extractor {r['extractor']}). "
            "Compare only with numbers from the same weights, resize and count."
        ]


def enlarged_view(images: torch.Tensor, view: int) -> torch.Tensor:
    """The `view`-th copy of real images for DF-GAN's enlarged test set: view 0 as they are, then mirrored and
    shifted by up to 1/32 of the side (edge pixels repeated), each view a fixed flip and shift."""
    if view == 0:
        return images
    side = images.shape[-1]
    r = max(1, side // 32)
    dx, dy = (view // 2) % (2 * r + 1) - r, (view // (2 * (2 * r + 1))) % (2 * r + 1) - r
    out = images.flip(-1) if view % 2 else images
    padded = F.pad(out, (r, r, r, r), mode="replicate")
    return padded[..., r + dy : r + dy + side, r + dx : r + dx + side]


@register
class InceptionScore(Metric):
    name, title = "inception_score", "Inception score"
    headline = ("mean", "std")

    def setup(self) -> None:
        self.extractor, _ = _extractor(self.ctx)
        self.logits: list[torch.Tensor] = []

    def update(self, generated: Generated) -> None:
        self.logits.append(_features(generated, self.extractor)[1].cpu())

    def compute(self) -> dict[str, Any]:
        splits = self.ctx.config.inception_splits
        mean, std = fidelity.inception_score(self.logits, splits, self.ctx.config.seed)
        images = sum(len(x) for x in self.logits)
        return {"mean": mean, "std": std, "splits": splits, "images": images, "extractor": fidelity.EXTRACTOR}

    def summary(self, r: dict[str, Any]) -> str:
        return f"IS {r['mean']:.2f}"

    def section(self, r: dict[str, Any]) -> list[str]:
        return [f"IS **{r['mean']:.2f} +- {r['std']:.2f}** ({r['images']} images, {r['splits']} splits)."]
