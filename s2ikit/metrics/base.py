"""The metric registry (StyleGAN2-ADA's `metric_main`): metrics registered by name, run over generated batches.

A metric is set up once for a generator and a data set (`setup` may skip it, with the reason, e.g. missing
weights), sees every generated batch (`update`), then returns its numbers (`compute`), the lines of its report
section (`section`) and its one line for the command's printout (`summary`); `headline` names the fields of its
result that are measurements (TensorBoard, the model card). A metric that needs inputs of its own (other
captions, other voices) may run its own generation passes with `measure` in `compute`. `measure` drives one
generation pass over a caption source and feeds every metric asked for, so `evaluate` (test captions), `select`
(training captions, over every kept generator) and anything else run the same code by name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

from s2ikit.config import EvaluateConfig
from s2ikit.core.inference import GeneratorBundle, generate_images
from s2ikit.data.dataset_info import DatasetInfo
from s2ikit.utils.errors import UserError


class MetricSkipped(Exception):
    """The metric cannot run here (the message says why and how to fix it); the others still run."""


@dataclass
class Context:
    """What every metric may use: the generator, the data set, the settings and the weights given."""

    bundle: GeneratorBundle
    data: DatasetInfo
    config: EvaluateConfig
    device: torch.device
    log: Callable[[str], None] = print
    fidelity_weights: str = ""  # FID/IS Inception (torch-fidelity's file); empty: the torch hub cache
    inception_weights: str = ""  # torchvision's ImageNet Inception-v3 (S2IGAN's mAP/R@k); empty: the hub cache
    shared: dict[str, Any] = field(default_factory=dict)  # extractors and judges built once for all metrics


@dataclass
class Generated:
    """One batch of captions and the images generated from them."""

    batch: dict[str, Any]  # the loader's rows: key, class_id, attributes, text, image (the real one), ...
    speech: torch.Tensor  # (n, D) speech embeddings
    images: torch.Tensor  # (n * k, 3, S, S): the k images of caption 0, then caption 1, ...
    k: int
    first_row: int = 0  # the caption row of the batch's first caption (z is a function of the row)
    cache: dict[str, Any] = field(default_factory=dict)  # per-batch features shared between metrics

    def per_image(self, values: list[Any]) -> list[Any]:
        """A per-caption list repeated for each of its k images."""
        return [v for v in values for _ in range(self.k)]


class Metric:
    """Subclass, set `name` (what `--metrics` and `evaluate.metrics` call it), `title` and `headline`, and
    decorate with `@register`; a module in s2ikit/metrics/ is found by itself (see __init__.py)."""

    name = ""
    title = ""  # report.md section heading
    # the fields of compute()'s result that are measurements (the rest are counts, settings and provenance):
    # TensorBoard's `eval/NAME/FIELD` and the model card; a dict field gives `NAME/FIELD/PART` (nested: deeper)
    headline: tuple[str, ...] = ()

    def __init__(self, ctx: Context):
        self.ctx = ctx

    def setup(self) -> None:
        """Raise MetricSkipped when the metric cannot run."""

    def update(self, generated: Generated) -> None:
        """Sees every batch of the shared generation pass; a metric with inputs of its own may ignore them."""

    def compute(self) -> dict[str, Any]:
        raise NotImplementedError

    def section(self, result: dict[str, Any]) -> list[str]:
        return []

    def summary(self, result: dict[str, Any]) -> str:
        """The metric's one line in `s2ikit evaluate`'s printout ("" prints none); by default its headline."""
        numbers = headline_of(self.name, self.headline, result)
        return ", ".join(f"{key} {value:.4g}" for key, value in numbers.items())

    def figures(self) -> dict[str, tuple[torch.Tensor, list[str], int]]:
        """Image grids the report writes beside report.md: file name -> (images, captions, columns)."""
        return {}


def headline_of(name: str, fields: Iterable[str], result: dict[str, Any]) -> dict[str, float]:
    """`name/field` -> value for each headline field of a result; a dict field gives `name/field/part` (nested
    dicts go deeper: `voices/accuracy/amy/class`); what is not a number is left out."""
    numbers: dict[str, float] = {}

    def add(key: str, value: Any) -> None:
        if isinstance(value, dict):
            for part, v in value.items():
                add(f"{key}/{part}", v)
        elif isinstance(value, (int, float)):
            numbers[key] = float(value)

    for field_name in fields:
        if field_name in result:
            add(f"{name}/{field_name}", result[field_name])
    return numbers


REGISTRY: dict[str, type[Metric]] = {}


def register(cls: type[Metric]) -> type[Metric]:
    """Class decorator: the metric, by its `name`. Two different metrics may not share a name."""
    if not cls.name:
        raise TypeError(f"{cls.__qualname__}: a registered metric needs a name")
    known = REGISTRY.get(cls.name)
    if known is not None and (known.__module__, known.__qualname__) != (cls.__module__, cls.__qualname__):
        raise TypeError(f"metric {cls.name!r} of {cls.__module__} is already registered by {known.__module__}")
    REGISTRY[cls.name] = cls
    return cls


def check_names(names: Iterable[str], where: str) -> tuple[str, ...]:
    """`names` if each is a registered metric, named once; else a one-line UserError naming `where` (the flag,
    or the preset key, the value came from)."""
    names, known = tuple(names), ", ".join(sorted(REGISTRY))
    if not names:
        raise UserError(f"{where}: name at least one metric (known: {known})")
    for i, name in enumerate(names):
        if name not in REGISTRY:
            raise UserError(f"{where}: unknown metric {name!r} (known: {known})")
        if name in names[:i]:
            raise UserError(f"{where}: metric {name!r} is named twice")
    return names


def build_metrics(names: Iterable[str], ctx: Context) -> tuple[dict[str, Metric], dict[str, str]]:
    """The metrics asked for, set up, and the reasons of those skipped."""
    metrics, skipped = {}, {}
    for name in check_names(names, "metrics"):
        metric = REGISTRY[name](ctx)
        try:
            metric.setup()
        except MetricSkipped as e:
            skipped[name] = str(e)
            ctx.log(f"skipping {name}: {e}")
            continue
        metrics[name] = metric
    return metrics, skipped


@torch.no_grad()
def measure(
    bundle: GeneratorBundle,
    batches: Iterable[dict[str, Any]],
    metrics: Iterable[Metric],
    k: int,
    seed: int,
    on_batch: Callable[[Generated], None] | None = None,
) -> int:
    """Generate `k` images per caption of every batch (z a pure function of (seed, caption row, image)) and feed
    them to every metric; returns the number of captions."""
    metrics, row, device = list(metrics), 0, bundle.device
    for batch in batches:
        speech = bundle.speech_encoder(batch["mel"].to(device), batch["mel_lengths"].to(device)).float()
        images = generate_images(bundle, speech, k, seed, first_row=row).flatten(0, 1)
        generated = Generated(batch, speech, images, k, row)
        row += speech.shape[0]
        for metric in metrics:
            metric.update(generated)
        if on_batch is not None:
            on_batch(generated)
    return row
