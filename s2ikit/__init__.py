"""s2ikit: speech-to-image generation with Fusion-S2iGan (Zhang & Schomaker, 2024).

`from s2ikit import SpeechToImage` loads a trained generator (core/speech_to_image.py); it is imported on first use, so
`import s2ikit` itself stays light (no torch). It loads the data set catalog (s2ikit/data/sources/ and any package's
`s2ikit.datasets` entry points), so every preset loader knows each data set's section.
"""

__version__ = "0.1.0"
__all__ = ["SpeechToImage", "__version__"]

from s2ikit.data import sources as _data_sets  # noqa: E402, F401  (registers every data set; after __version__)


def __getattr__(name: str):
    if name == "SpeechToImage":
        from s2ikit.core.speech_to_image import SpeechToImage

        return SpeechToImage
    raise AttributeError(f"module 's2ikit' has no attribute {name!r}")
