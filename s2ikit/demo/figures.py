"""The figure of what the model heard: the log-mel spectrogram (low frequencies at the bottom) above the speech
encoder's attention over time, on one time axis, so a peak shows which stretch of speech the embedding weighs."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from s2ikit.demo.backend import Picture

WIDTH = 640  # px of the time axis
MEL_HEIGHT = 160  # px of the spectrogram
ATTENTION_HEIGHT = 80  # px of the attention curve
MARGIN = 16  # px around the panels, holding their titles
# viridis at five stops: perceptually even, readable in grey, the usual spectrogram palette.
_STOPS = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], dtype=np.float64)


def colourize(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Any array -> uint8 RGB of the same shape + (3,), values clipped to [low, high]."""
    t = np.clip((values - low) / (high - low), 0.0, 1.0) * (len(_STOPS) - 1)
    i = np.minimum(t.astype(int), len(_STOPS) - 2)
    frac = (t - i)[..., None]
    return np.round(_STOPS[i] * (1 - frac) + _STOPS[i + 1] * frac).astype(np.uint8)


def heard_figure(picture: Picture) -> np.ndarray:
    """(H, W, 3) uint8: titled spectrogram panel over titled attention panel."""
    font = ImageFont.load_default()
    mel = picture.mel.astype(np.float64).T[::-1]  # (n_mels, T), high bins on top
    frames = mel.shape[1]
    spectrogram = Image.fromarray(colourize(mel, -2.5, 2.5)).resize((WIDTH, MEL_HEIGHT), Image.Resampling.BILINEAR)
    height = 3 * MARGIN + MEL_HEIGHT + ATTENTION_HEIGHT + 12
    figure = Image.new("RGB", (WIDTH + 2 * MARGIN, height), "white")
    draw = ImageDraw.Draw(figure)
    top = MARGIN
    draw.text((MARGIN, 2), f"log-mel the model heard ({mel.shape[0]} bins, {picture.seconds:.2f} s)", "black", font)
    figure.paste(spectrogram, (MARGIN, top))
    base = top + MEL_HEIGHT + MARGIN + ATTENTION_HEIGHT
    draw.text((MARGIN, top + MEL_HEIGHT + 2), "speech encoder attention over time", fill="black", font=font)
    # Encoder step j sees frames [j * step, j * step + view): draw its weight at the middle of that stretch.
    centres = np.arange(len(picture.attention)) * picture.frames_per_step + picture.frames_per_view / 2
    xs = MARGIN + centres / frames * WIDTH
    # Even attention (1/T' each) sits at a third of the panel, so a flat curve reads as flat, not as a peak.
    top_value = max(float(picture.attention.max()), 3.0 / len(picture.attention))
    ys = base - picture.attention / top_value * (ATTENTION_HEIGHT - 4)
    draw.rectangle((MARGIN, base - ATTENTION_HEIGHT, MARGIN + WIDTH, base), outline=(200, 200, 200))
    outline = [(float(xs[0]), float(base))] + list(zip(xs.tolist(), ys.tolist())) + [(float(xs[-1]), float(base))]
    draw.polygon(outline, fill=tuple(_STOPS[2].astype(int)), outline=tuple(_STOPS[0].astype(int)))
    draw.text((MARGIN, base + 2), "0 s", fill="black", font=font)
    end = f"{picture.seconds:.2f} s"
    draw.text((MARGIN + WIDTH - draw.textlength(end, font=font), base + 2), end, fill="black", font=font)
    return np.asarray(figure)
