"""Batch augmentations for training (validation and export see clean inputs): the encoder's images and speech,
the GAN's real images (`augment_real`, one transform per image) and DiffAugment's translation in front of D.

images: "flip" mirrors left-right (photos); "dihedral" also rotates by multiples of 90 degrees (shapes, whose
        class does not change under rotation). One transform per batch: cheap, and enough variety per epoch.
speech: SpecAugment-style masking of one band of mel bins and one span of frames per utterance.
"""

from __future__ import annotations

import torch

from s2ikit.models.symmetry import apply_symmetry

SYMMETRIES = ("none", "flip", "dihedral")  # the image modes of augment_images and augment_real


def augment_images(images: torch.Tensor, mode: str, generator: torch.Generator) -> torch.Tensor:
    if mode == "none":
        return images
    if mode not in SYMMETRIES:
        raise ValueError(f"image augmentation must be {'|'.join(SYMMETRIES)}, not {mode!r}")
    if torch.rand((), generator=generator) < 0.5:
        images = images.flip(-1)
    if mode == "dihedral":
        images = torch.rot90(images, int(torch.randint(4, (), generator=generator)), dims=(-2, -1))
    return images


def augment_real(images: torch.Tensor, mode: str, generator: torch.Generator) -> torch.Tensor:
    """A transform per image, drawn from the symmetries the data set's distribution has: "flip" (photos: a
    mirrored bird is still a bird in a plausible pose) or "dihedral" (shapes: position and rotation are uniform,
    so flips and quarter turns map the training distribution onto itself). Real images only: unlike DiffAugment
    nothing leaks, since a transformed real image is just another sample of the same distribution, and D sees
    up to 8x as many distinct real images."""
    if mode == "none":
        return images
    if mode not in SYMMETRIES:
        raise ValueError(f"real-image augmentation must be {'|'.join(SYMMETRIES)}, not {mode!r}")
    b = images.shape[0]
    flip = (torch.rand(b, generator=generator) < 0.5).to(images.device)
    turns = torch.randint(4, (b,), generator=generator).to(images.device) if mode == "dihedral" else None
    return apply_symmetry(images, flip, turns)


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


def translate(images: torch.Tensor, fraction: float, generator: torch.Generator | None) -> torch.Tensor:
    """DiffAugment's translation (Zhao et al. 2020): shift each image by up to `fraction` of its side, filling
    with zeros (mid-grey in [-1, 1]). Differentiable, so it goes in front of D for real and fake alike; a D
    that only ever sees shifted images cannot memorise a few hundred training images."""
    if fraction <= 0:
        return images
    b, c, h, w = images.shape
    r = max(1, round(fraction * h))
    shift = torch.randint(-r, r + 1, (b, 2), generator=generator).to(images.device)
    padded = torch.nn.functional.pad(images, (r, r, r, r))
    rows = torch.arange(h, device=images.device)[None, :] + r - shift[:, :1]  # (b, h)
    cols = torch.arange(w, device=images.device)[None, :] + r - shift[:, 1:]  # (b, w)
    out = padded.gather(2, rows[:, None, :, None].expand(b, c, h, w + 2 * r))
    return out.gather(3, cols[:, None, None, :].expand(b, c, h, w))
