"""Data set sources: each reads (or generates) one data set into `Record`s and loads its images.

Sources share one interface (`base.Source`) and are picked by name, like TTS backends. Each data set is one
module of this package that calls `register_dataset` (see docs/adding-a-data-set.md); importing this package
imports every such module, then the modules third-party packages name under the `s2ikit.datasets` entry point
group, so the catalog is complete before any preset is read (`import s2ikit` does it).
"""

import importlib
import pkgutil
import warnings
from importlib.metadata import entry_points

from s2ikit.data.sources.base import Source, get_source, register_dataset, source_names

__all__ = ["Source", "get_source", "register_dataset", "source_names"]

ENTRY_POINTS = "s2ikit.datasets"  # [project.entry-points."s2ikit.datasets"] NAME = "package.module"


def _discover() -> None:
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    for entry in entry_points(group=ENTRY_POINTS):
        try:
            entry.load()
        except Exception as e:  # one broken plug-in must not take the built-in data sets down with it
            warnings.warn(f"data set plug-in {entry.name} ({entry.value}) failed to load: {e}", stacklevel=2)


_discover()
