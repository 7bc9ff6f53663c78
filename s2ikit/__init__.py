"""s2ikit: speech-to-image generation with Fusion-S2iGan (Zhang & Schomaker, 2024).

`from s2ikit import SpeechToImage` loads a trained generator (core/speech_to_image.py); it is imported on first use, so
`import s2ikit` itself stays light (no torch).
"""

__version__ = "0.1.0"
__all__ = ["SpeechToImage", "__version__"]


def __getattr__(name: str):
    if name == "SpeechToImage":
        from s2ikit.core.speech_to_image import SpeechToImage

        return SpeechToImage
    raise AttributeError(f"module 's2ikit' has no attribute {name!r}")
