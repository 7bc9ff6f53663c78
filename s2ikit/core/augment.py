"""Batch augmentations for training (validation and export see clean inputs): the encoder's images and speech,
the GAN's real images (`augment_real`, one transform per image) and DiffAugment's translation in front of D.

images: "flip" mirrors left-right (photos); "dihedral" also rotates by multiples of 90 degrees (shapes, whose
        class does not change under rotation). One transform per batch: cheap, and enough variety per epoch.
speech: SpecAugment-style masking of one band of mel bins and one span of frames per utterance; and, for a
        speaker-robust encoder, on the utterance-normalised log-mels of a padded batch, per utterance: vocal tract
        length perturbation (`warp_mel`, Jaitly & Hinton 2013: the mel axis scaled by a random factor), tempo
        perturbation (`stretch_time`, Ko et al. 2015: the time axis resampled) and Gaussian noise of a random
        level (`add_noise`). Each is off at 0 and then draws no random number, so turning one on leaves the
        draws of the others as they were.
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


def _factors(count: int, spread: float, generator: torch.Generator) -> torch.Tensor:
    """`count` factors drawn uniformly from [1 - spread, 1 + spread]."""
    return 1 + spread * (2 * torch.rand(count, generator=generator, dtype=torch.float64) - 1)


def warp_mel(mel: torch.Tensor, lengths: torch.Tensor, spread: float, generator: torch.Generator) -> torch.Tensor:
    """VTLP on mel bins: utterance i's bin k takes the value at bin k * a_i (linear interpolation, the top bin
    repeated past the edge), a_i drawn from [1 - spread, 1 + spread]; a > 1 reads higher bins, as a shorter vocal
    tract's formants lie higher. Padding frames stay zero. `lengths` is unused: every frame is warped alike."""
    if spread <= 0:
        return mel
    batch, _, bins = mel.shape
    alpha = _factors(batch, spread, generator).to(mel.device)
    source = (torch.arange(bins, device=mel.device, dtype=torch.float64)[None, :] * alpha[:, None]).clamp(0, bins - 1)
    low = source.floor().long()
    high = (low + 1).clamp(max=bins - 1)
    weight = (source - low).to(mel.dtype)[:, None, :]
    expand = (batch, mel.shape[1], bins)
    below = mel.gather(2, low[:, None, :].expand(expand))
    above = mel.gather(2, high[:, None, :].expand(expand))
    return below * (1 - weight) + above * weight


def stretch_time(
    mel: torch.Tensor, lengths: torch.Tensor, spread: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Tempo perturbation: utterance i's real frames resampled (linear interpolation) to round(length_i * r_i)
    frames, r_i drawn from [1 - spread, 1 + spread] (r > 1: slower speech); returns the re-padded batch and the
    new lengths."""
    if spread <= 0:
        return mel, lengths
    factors = _factors(len(lengths), spread, generator)
    new_lengths = torch.clamp((lengths.double() * factors).round().long(), min=1)
    out = mel.new_zeros(mel.shape[0], int(new_lengths.max()), mel.shape[2])
    for row, (length, new) in enumerate(zip(lengths.tolist(), new_lengths.tolist())):
        frames = mel[row, :length].T[None]  # (1, bins, length)
        resized = torch.nn.functional.interpolate(frames, size=new, mode="linear", align_corners=True)
        out[row, :new] = resized[0].T
    return out, new_lengths.to(lengths.device)


def add_noise(mel: torch.Tensor, lengths: torch.Tensor, max_std: float, generator: torch.Generator) -> torch.Tensor:
    """Gaussian noise on the real frames, of a standard deviation drawn per utterance from [0, max_std], in the
    units of the utterance-normalised log-mel (each bin has std 1 over time); padding frames stay zero."""
    if max_std <= 0:
        return mel
    batch, frames, bins = mel.shape
    std = max_std * torch.rand(batch, generator=generator)
    noise = torch.randn(batch, frames, bins, generator=generator) * std[:, None, None]
    real = torch.arange(frames)[None, :] < lengths.cpu()[:, None]
    return mel + (noise * real[:, :, None]).to(mel.device, mel.dtype)
