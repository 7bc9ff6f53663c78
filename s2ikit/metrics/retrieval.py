"""Retrieval between real and generated images.

`s2igan_retrieval`: S2IGAN's mAP and R@k: real test images as queries, generated images as the gallery, cosine
of torchvision Inception-v3 pooled features (ImageNet weights); mAP over a few queries per class.
`encoder_retrieval`: the trained encoders' speech<->image retrieval on the real test images, and each caption
against all generated images through the encoders' image side (is its own picture the one it points to?).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from s2ikit.core.factories import load_encoders
from s2ikit.core.retrieval import cross_modal_retrieval, mean_average_precision, recall_at_k
from s2ikit.metrics.base import Generated, Metric, MetricSkipped, register
from s2ikit.models.image_encoder import InceptionImageEncoder, find_weights
from s2ikit.utils.errors import UserError


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


class _RealAndGenerated(Metric):
    """Keeps one feature per real image (first caption met) and one per generated image."""

    def setup(self) -> None:
        self.real: dict[str, dict[str, Any]] = {}  # image key -> class, feature
        self.generated: list[torch.Tensor] = []
        self.caption_image: list[str] = []  # image key of each generated image
        self.caption_class: list[int] = []
        self.speech: list[torch.Tensor] = []

    def features(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def update(self, generated: Generated) -> None:
        batch = generated.batch
        self.caption_image += generated.per_image(list(batch["key"]))
        self.caption_class += generated.per_image([int(c) for c in batch["class_id"]])
        self.speech.append(generated.speech.cpu())
        self.generated.append(self.features(generated.images))
        new = [i for i, key in enumerate(batch["key"]) if key not in self.real]
        for i in new:
            self.real.setdefault(batch["key"][i], {"class": int(batch["class_id"][i])})
        if new:
            feats = self.features(batch["image"][new].to(self.ctx.device))
            for i, f in zip(new, feats):
                self.real[batch["key"][i]]["feature"] = f


@register
class S2IGANRetrieval(_RealAndGenerated):
    name, title = "s2igan_retrieval", "Real-image queries against generated images (S2IGAN's mAP and R@k)"
    headline = ("mAP", "R@1", "R@5", "R@10", "R@50")

    def setup(self) -> None:
        try:
            hint = "place inception_v3_google-0cc3c7bd.pth there or pass --image-weights PATH"
            weights = find_weights(self.ctx.inception_weights, ("inception_v3_google-*.pth",), "Inception-v3", hint)
        except FileNotFoundError as e:
            raise MetricSkipped(f"mAP and R@k use torchvision's ImageNet Inception-v3: {e}") from None
        self.inception = InceptionImageEncoder(weights, 16).to(self.ctx.device)
        super().setup()

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.inception.features(images).half().cpu()

    def compute(self) -> dict[str, Any]:
        gallery = F.normalize(torch.cat(self.generated).float(), dim=1)
        keys = list(self.real)
        queries = F.normalize(torch.stack([self.real[k]["feature"] for k in keys]).float(), dim=1)
        position = {k: i for i, k in enumerate(keys)}
        source = torch.tensor([position[k] for k in self.caption_image])  # the real image each generated one came from
        own = torch.arange(len(keys))[:, None] == source[None, :]
        out: dict[str, Any] = {"queries": len(keys), "gallery": len(self.caption_image)}
        out.update({f"R@{k}": v for k, v in recall_at_k(queries @ gallery.T, own).items()})
        if min(self.caption_class) >= 0:  # mAP: a few queries per class against their own captions' images
            per_class: dict[int, list[int]] = {}
            for i, k in enumerate(keys):
                per_class.setdefault(self.real[k]["class"], []).append(i)
            chosen = sorted(i for rows in per_class.values() for i in rows[: self.ctx.config.map_queries_per_class])
            chosen_keys = {keys[i] for i in chosen}
            cols = [j for j, k in enumerate(self.caption_image) if k in chosen_keys]
            q_class = torch.tensor([self.real[keys[i]]["class"] for i in chosen])
            g_class = torch.tensor([self.caption_class[j] for j in cols])
            out["mAP"] = mean_average_precision(queries[chosen] @ gallery[cols].T, q_class[:, None] == g_class[None, :])
            out["mAP_queries"], out["mAP_gallery"] = len(chosen), len(cols)
        return out

    def summary(self, r: dict[str, Any]) -> str:
        shown = [f"mAP {_pct(r['mAP'])}"] if "mAP" in r else []
        shown += [f"{k} {_pct(v)}" for k, v in r.items() if k.startswith("R@")]
        return "real images against generated (S2IGAN): " + ", ".join(shown)

    def section(self, r: dict[str, Any]) -> list[str]:
        lines = []
        if "mAP" in r:
            lines.append(f"mAP **{_pct(r['mAP'])}** ({r['mAP_queries']} queries vs {r['mAP_gallery']} generated).")
        recall = ", ".join(f"{k} {_pct(v)}" for k, v in r.items() if k.startswith("R@"))
        return lines + [f"{recall} ({r['queries']} queries vs {r['gallery']} generated)."]


@register
class EncoderRetrieval(_RealAndGenerated):
    name, title = "encoder_retrieval", "Speech encoder retrieval"
    headline = ("caption_to_generated",)

    def setup(self) -> None:
        try:
            encoders, _ = load_encoders(self.ctx.bundle.info["encoder_run"])
        except (UserError, FileNotFoundError, TypeError) as e:
            raise MetricSkipped(f"the encoder run is not loadable: {e}") from None
        self.image = encoders.image.to(self.ctx.device)
        # the encoders learnt at the shards' size: show them generated images at that size (as train-gan does)
        self.size = self.ctx.data.image_size
        super().setup()

    def features(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[-1] != self.size:
            images = F.interpolate(images, size=(self.size, self.size), mode="bilinear")
        return self.image(images).float().cpu()

    def compute(self) -> dict[str, Any]:
        keys = list(self.real)
        position = {k: i for i, k in enumerate(keys)}
        speech = torch.cat(self.speech)
        per_caption = len(self.caption_image) // speech.shape[0]
        caption_keys = self.caption_image[::per_caption]
        real = cross_modal_retrieval(
            speech,
            torch.tensor([position[k] for k in caption_keys]),
            torch.tensor([self.real[k]["class"] for k in caption_keys]),
            torch.stack([self.real[k]["feature"] for k in keys]),
            torch.tensor([self.real[k]["class"] for k in keys]),
        )
        generated = torch.cat(self.generated)
        source = torch.arange(generated.shape[0]) // per_caption  # caption of each image
        hits = {1: 0.0, 5: 0.0, 10: 0.0}
        for start in range(0, speech.shape[0], 1024):  # in blocks: CUB's 29k x 29k similarities would need 3.4 GB
            rows = torch.arange(start, min(start + 1024, speech.shape[0]))
            block = recall_at_k(speech[rows] @ generated.T, rows[:, None] == source[None, :], tuple(hits))
            for k in hits:
                hits[k] += block[k] * len(rows)
        return {
            "real_test_images": real,
            "caption_to_generated": {f"R@{k}": v / speech.shape[0] for k, v in hits.items()},
        }

    def summary(self, r: dict[str, Any]) -> str:
        return "caption -> its generated image: " + ", ".join(
            f"{k} {_pct(v)}" for k, v in r["caption_to_generated"].items()
        )

    def section(self, r: dict[str, Any]) -> list[str]:
        real, gen = r["real_test_images"], r["caption_to_generated"]
        return [
            "Real test images: " + ", ".join(f"{k} {_pct(v)}" for k, v in real.items() if k.startswith("s2i")) + ".",
            "",
            "Each caption against all generated images (is its own picture the one it points to?): "
            + ", ".join(f"{k} {_pct(v)}" for k, v in gen.items())
            + ".",
        ]
