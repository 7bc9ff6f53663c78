"""Metrics by name (see base.py): importing the package registers every metric."""

from s2ikit.metrics import class_accuracy, diversity, fid, retrieval  # noqa: F401  (registration)
from s2ikit.metrics.base import REGISTRY, Context, Generated, Metric, MetricSkipped, build_metrics, measure

__all__ = ["REGISTRY", "Context", "Generated", "Metric", "MetricSkipped", "build_metrics", "measure"]
