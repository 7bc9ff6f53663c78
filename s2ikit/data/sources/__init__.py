"""Data set sources: each reads (or generates) one data set into `Record`s and loads its images.

Sources share one interface (`base.Source`) and are picked by name, like TTS backends.
"""

from s2ikit.data.sources.base import Source, get_source, source_names

__all__ = ["Source", "get_source", "source_names"]
