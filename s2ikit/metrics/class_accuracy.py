"""`class_accuracy`: does each generated image show its caption's class and attributes, to a judge trained on
real images (metrics/judge.py)? Reported per head and, per judged attribute, per value (which shapes fail?)."""

from __future__ import annotations

from typing import Any

import torch

from s2ikit.metrics.base import Generated, Metric, MetricSkipped, register
from s2ikit.metrics.judge import Judge, image_labels, load_or_train_judge


def shared_judge(ctx) -> Judge:
    """One judge per context, trained (or loaded from the data set's cache) on first use."""
    if "judge" not in ctx.shared:
        size = ctx.bundle.generator.image_size
        ctx.shared["judge"] = load_or_train_judge(ctx.data, size, ctx.config, ctx.device, ctx.log)
    return ctx.shared["judge"]


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


@register
class ClassAccuracy(Metric):
    name, title = "class_accuracy", "Class accuracy of generated images"
    headline = ("accuracy",)

    def setup(self) -> None:
        if not self.ctx.data.has_classes and not self.ctx.config.judge_attributes:
            raise MetricSkipped("the data set has no classes (and evaluate.judge_attributes is empty)")
        self.judge = shared_judge(self.ctx)
        self.hits: dict[str, list[torch.Tensor]] = {}
        self.labels: list[dict[str, Any]] = []

    def labels_of(self, batch: dict[str, Any]) -> list[dict[str, Any]]:
        vocab = tuple(self.judge.vocab)
        return [image_labels(int(c), a, vocab) for c, a in zip(batch["class_id"], batch["attributes"])]

    def update(self, generated: Generated) -> None:
        per_image = generated.per_image(self.labels_of(generated.batch))
        for head, ok in self.judge.correct(generated.images, per_image).items():
            self.hits.setdefault(head, []).append(ok)
        self.labels += per_image

    def compute(self) -> dict[str, Any]:
        accuracy = {head: float(torch.cat(v).float().mean()) for head, v in self.hits.items()}
        by_value: dict[str, dict[str, dict[str, Any]]] = {}
        for head in self.ctx.config.judge_attributes:
            if head not in self.hits:
                continue
            groups: dict[str, list[bool]] = {}
            for label, hit in zip(self.labels, torch.cat(self.hits[head]).tolist()):
                groups.setdefault(str(label.get(head)), []).append(hit)
            by_value[head] = {v: {"accuracy": sum(h) / len(h), "images": len(h)} for v, h in sorted(groups.items())}
        return {"accuracy": accuracy, "by_value": by_value, "images": len(self.labels), "judge": self.judge.info}

    def summary(self, result: dict[str, Any]) -> str:
        return "class accuracy of generated images: " + ", ".join(
            f"{head} {_pct(value)}" for head, value in result["accuracy"].items()
        )

    def section(self, result: dict[str, Any]) -> list[str]:
        lines = [
            "A classifier trained on real images judges whether each generated image shows its caption's "
            f"label. It was trained on the {result['judge']['trained_on']}.",
            "",
            "| label | generated | real (judge calibration) |",
            "|---|---|---|",
        ]
        real = result["judge"].get("real_accuracy", {})
        for head, value in result["accuracy"].items():
            lines.append(f"| {head} | {_pct(value)} | {_pct(real[head]) if head in real else '-'} |")
        for head, values in result["by_value"].items():
            shown = ", ".join(f"{v} {_pct(r['accuracy'])} ({r['images']})" for v, r in values.items())
            lines += ["", f"By {head} (generated images judged right, of how many): {shown}."]
        return lines
