"""`fid` and `inception_score`: torch-fidelity's Inception-v3 over the generated images (metrics/fidelity.py).

One Inception pass per batch serves both metrics. FID's real-image statistics are the explicit, cached `ref`
file of the data set's test split at the generator's size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from s2ikit.config import LoaderConfig
from s2ikit.core.checkpoints import load_file, save_file
from s2ikit.core.images import resize
from s2ikit.data.loader import first_rows, make_loader
from s2ikit.metrics import fidelity
from s2ikit.metrics.base import Context, Generated, Metric, MetricSkipped, register


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

    def setup(self) -> None:
        self.extractor, self.weights = _extractor(self.ctx)
        self.fid = fidelity.FrechetDistance()
        self.generated = 0

    def update(self, generated: Generated) -> None:
        self.fid.update(_features(generated, self.extractor)[0], real=False)
        self.generated += generated.images.shape[0]

    def _reference(self) -> Path:
        ctx, size = self.ctx, self.ctx.bundle.generator.image_size
        ref = fidelity.reference_path(ctx.data.root, ctx.data.dataset, ctx.data.sha256, "test", size)
        if ref.is_file():
            self.fid.load_real_statistics(load_file(ref))
            return ref
        ctx.log(f"fid ref: real test images at {size} px -> {ref}")
        seen: set[str] = set()
        for batch in make_loader(ctx.data.root, LoaderConfig(split="test", mode="test", batch_size=64)):
            rows = first_rows(batch["key"], seen)  # every image once, however many captions it has
            if rows:
                real = batch["image"][rows]
                real = resize(real, size) if real.shape[-1] > size else real
                self.fid.update(self.extractor(real.to(ctx.device))[0], real=True)
        save_file(self.fid.real_statistics(), ref)
        return ref

    def compute(self) -> dict[str, Any]:
        ref = self._reference()
        return {"value": self.fid.compute(), "real_images": int(self.fid.metric.real_features_num_samples),
                "generated_images": self.generated, "extractor": fidelity.EXTRACTOR, "weights": str(self.weights),
                "protocol": fidelity.PROTOCOL, "real_resized_to": self.ctx.bundle.generator.image_size,
                "reference": str(ref)}  # fmt: skip

    def section(self, r: dict[str, Any]) -> list[str]:
        return [
            f"FID **{r['value']:.2f}** ({r['generated_images']} generated vs {r['real_images']} real test images, "
            f"real images resized to {r['real_resized_to']} px first; {r['protocol']}; extractor {r['extractor']}). "
            "Compare only with numbers from the same weights, resize and count."
        ]


@register
class InceptionScore(Metric):
    name, title = "inception_score", "Inception score"

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

    def section(self, r: dict[str, Any]) -> list[str]:
        return [f"IS **{r['mean']:.2f} +- {r['std']:.2f}** ({r['images']} images, {r['splits']} splits)."]
