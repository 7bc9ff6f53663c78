"""Batch augmentations for encoder training (training only; validation and export see clean inputs).

images: "flip" mirrors left-right (photos); "dihedral" also rotates by multiples of 90 degrees (shapes, whose
        class does not change under rotation). One transform per batch: cheap, and enough variety per epoch.
speech: SpecAugment-style masking of one band of mel bins and one span of frames per utterance.
"""

from __future__ import annotations

import torch


def augment_images(images: torch.Tensor, mode: str, generator: torch.Generator) -> torch.Tensor:
    if mode == "none":
        return images
    if mode not in ("flip", "dihedral"):
        raise ValueError(f"encoder.image_augment must be none|flip|dihedral, not {mode!r}")
    if torch.rand((), generator=generator) < 0.5:
        images = images.flip(-1)
    if mode == "dihedral":
        images = torch.rot90(images, int(torch.randint(4, (), generator=generator)), dims=(-2, -1))
    return images


def mask_speech(
    mel: torch.Tensor, lengths: torch.Tensor, max_bins: int, max_frames: int, generator: torch.Generator
) -> torch.Tensor:
    """Zero (the per-utterance mean, after normalisation) one band of bins and one span of real frames."""
    if max_bins <= 0 and max_frames <= 0:
        return mel
    mel = mel.clone()
    for row, length in enumerate(lengths.tolist()):
        if max_bins > 0:
            width = int(torch.randint(max_bins + 1, (), generator=generator))
            start = int(torch.randint(mel.shape[2] - width + 1, (), generator=generator))
            mel[row, :length, start : start + width] = 0
        if max_frames > 0:
            span = min(int(torch.randint(max_frames + 1, (), generator=generator)), length // 4)
            start = int(torch.randint(length - span + 1, (), generator=generator))
            mel[row, start : start + span] = 0
    return mel
