"""The metric registry and the diversity metric's known answers."""

import pytest
import torch
from torch import nn

from s2ikit.config import EvaluateConfig
from s2ikit.core.inference import GeneratorBundle
from s2ikit.metrics import REGISTRY, Context, Metric, MetricSkipped, build_metrics, measure
from s2ikit.metrics.diversity import Diversity, mean_pairwise_distance


def test_mean_pairwise_distance_known_answer():
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0], [0.0, 0.0]])
    assert mean_pairwise_distance(x) == pytest.approx((5 + 0 + 5) / 3)


class _Toy(nn.Module):
    """A 4 px generator: an image that is the speech embedding's first value, plus z when `uses_z`."""

    def __init__(self, uses_z: bool):
        super().__init__()
        self.uses_z, self.z_dim, self.image_size = uses_z, 3, 4
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, z, speech):
        base = speech[:, :1, None, None].expand(-1, 3, 4, 4)
        return base + (z[:, :1, None, None] if self.uses_z else 0) + self.w


class _Data:
    def __init__(self):
        self.has_classes, self.class_ids, self.classes = True, (0, 1), ("a", "b")


def _batches():
    torch.manual_seed(0)
    for start in (0, 4):
        yield {
            "key": [f"k{start + i}" for i in range(4)], "class_id": torch.tensor([0, 0, 1, 1]),
            "text": ["a", "a", "b", "b"], "image": torch.rand(4, 3, 4, 4) * 2 - 1,
            "mel": torch.zeros(4, 2, 1), "mel_lengths": torch.ones(4, dtype=torch.long),
        }  # fmt: skip


def _diversity(uses_z: bool) -> dict:
    bundle = GeneratorBundle(_Toy(uses_z), lambda mel, lengths: torch.randn(len(lengths), 2), None, None, None, {})
    config = EvaluateConfig(diversity_images=4, judge_attributes=())
    ctx = Context(bundle, _Data(), config, torch.device("cpu"), log=lambda s: None)
    ctx.shared["judge"] = None  # pixels only: no judge needed for this check
    metric = Diversity(ctx)
    metric.setup()
    metric.judge = None
    measure(bundle, _batches(), [metric], 1, seed=0)
    return metric.compute()


def test_a_generator_that_ignores_z_has_no_diversity_and_one_that_uses_it_has_some():
    assert _diversity(uses_z=False)["ratio"]["pixels"] == 0.0
    varied = _diversity(uses_z=True)
    assert varied["ratio"]["pixels"] > 0.1 and set(varied["per_class"]) == {"a", "b"}


def test_registry_names_every_metric_and_skips_with_the_reason():
    assert {"class_accuracy", "diversity", "fid", "inception_score", "s2igan_retrieval", "encoder_retrieval"} <= set(
        REGISTRY
    )

    class Never(Metric):
        name = "never"

        def setup(self):
            raise MetricSkipped("needs something this machine lacks")

    REGISTRY["never"] = Never
    try:
        logs = []
        ctx = Context(None, None, EvaluateConfig(), torch.device("cpu"), log=logs.append)
        metrics, skipped = build_metrics(["never"], ctx)
        assert metrics == {} and skipped == {"never": "needs something this machine lacks"}
        assert logs == ["skipping never: needs something this machine lacks"]
        with pytest.raises(ValueError, match="unknown metric 'nope'"):
            build_metrics(["nope"], ctx)
    finally:
        del REGISTRY["never"]
