"""s2ikit: speech-to-image generation with Fusion-S2iGan (Zhang & Schomaker, 2024)."""

__version__ = "0.1.0"
