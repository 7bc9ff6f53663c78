"""Metrics by name (see base.py). Importing the package registers every metric: each module of this folder is
imported, in alphabetical order, so adding a metric is adding one module with a `@register`ed class; installed
packages may add theirs under the `s2ikit.metrics` entry-point group (`name = "package.module"` or
`"package.module:MetricClass"`)."""

import importlib
import pkgutil
from importlib.metadata import entry_points

from s2ikit.metrics.base import (
    REGISTRY,
    Context,
    Generated,
    Metric,
    MetricSkipped,
    build_metrics,
    check_names,
    headline_of,
    measure,
    register,
)
from s2ikit.utils.errors import UserError

__all__ = [
    "REGISTRY", "Context", "Generated", "Metric", "MetricSkipped", "build_metrics", "check_names", "headline_of",
    "measure", "register",
]  # fmt: skip

ENTRY_POINT_GROUP = "s2ikit.metrics"


def _import_modules() -> None:
    for module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
        importlib.import_module(f"{__name__}.{module}")


def _load_plugins() -> None:
    """Each entry point names a module (importing it runs its `@register`) or a Metric class (registered here)."""
    for point in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda p: p.name):
        try:
            loaded = point.load()
            if isinstance(loaded, type) and issubclass(loaded, Metric):
                register(loaded)
        except Exception as e:  # a broken plug-in is the user's install to fix: say which one and why
            raise UserError(f"metric plug-in {point.name!r} ({point.value}): cannot be loaded: {e}") from None


_import_modules()
_load_plugins()
