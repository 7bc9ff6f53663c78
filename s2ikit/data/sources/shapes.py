"""The embedded data set: coloured geometric shapes with spoken captions, generated locally.

Class = (colour, shape, size): 6 x 4 x 2 = 48 classes by default (the preset may pick a subset). Position,
rotation and background shade are random per image (seeded); the background shade is named in some captions,
so a speech encoder can learn it too.
Every random choice is drawn at index time and stored in the record's attributes, so rendering is a pure
function of the record and a rerun reproduces each image bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from s2ikit.config import PrepareFlag, PrepareSource, Preset, as_dict
from s2ikit.data.records import Caption, Record
from s2ikit.data.sources.base import register_dataset
from s2ikit.utils.checks import at_least, checked, fraction, items, setting
from s2ikit.utils.errors import UserError

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "orange": (245, 135, 20),
    "yellow": (240, 215, 40),
    "green": (35, 165, 60),
    "blue": (40, 80, 225),
    "purple": (140, 50, 185),
}
SHAPES = ("circle", "square", "triangle", "star")
SIZES = ("small", "large")
BACKGROUNDS: dict[str, int] = {"light grey": 200, "grey": 128, "dark grey": 50}  # grey level before jitter
RADIUS = {"small": (0.14, 0.18), "large": (0.28, 0.34)}  # circumradius as a fraction of the image side

# {bg} only appears where the template names the background. Few distinct sentences keep TTS cheap: the
# content cache synthesizes each (sentence, speaking rate) once.
TEMPLATES = (
    "a {size} {colour} {shape}",
    "this picture shows a {size} {colour} {shape} on a {bg} background",
    "there is a {colour} {shape} and it is {size}",
    "the image contains one {size} {colour} {shape}",
    "a {size} {shape} coloured {colour}",
    "a {size} {colour} {shape} in front of a {bg} background",
    "i can see a {colour} {shape} which is {size}",
    "a {colour} {shape}, quite {size}, on {bg}",
)


@dataclass(frozen=True)
@checked("shapes")
class ShapesConfig:
    """The embedded data set: coloured geometric shapes described by spoken captions."""

    images_per_class: int = setting(20, at_least(1))  # 48 classes (6 colours x 4 shapes x 2 sizes)
    captions_per_image: int = setting(3, at_least(1))
    # of each class's images; the split is a seeded shuffle within each class
    test_fraction: float = setting(0.2, fraction)
    # Vocabulary; a subset gives a smaller data set (classes = colours x shapes x sizes).
    colours: tuple[str, ...] = setting(("red", "orange", "yellow", "green", "blue", "purple"), items())
    shapes: tuple[str, ...] = setting(("circle", "square", "triangle", "star"), items())
    sizes: tuple[str, ...] = setting(("small", "large"), items())


def class_name(colour: str, shape: str, size: str) -> str:
    return f"{size}_{colour}_{shape}"


class ShapesSource:
    name = "shapes"
    needs_tts = True

    def __init__(self, preset: Preset, root: Path | None):
        self.config = preset.shapes
        self.notes: list[str] = []  # generated: nothing to warn about, nothing left out
        self.left_out: list[dict[str, Any]] = []
        self.seed = preset.prepare.seed
        if self.config.images_per_class < 1 or self.config.captions_per_image < 1:
            raise UserError("shapes.images_per_class and shapes.captions_per_image must be at least 1")
        if self.config.captions_per_image > len(TEMPLATES):
            raise UserError(f"shapes.captions_per_image is at most {len(TEMPLATES)} (one per template)")
        if not 0.0 <= self.config.test_fraction < 1.0:
            raise UserError("shapes.test_fraction must be in [0, 1)")
        for name, chosen, known in (
            ("colours", self.config.colours, COLOURS),
            ("shapes", self.config.shapes, SHAPES),
            ("sizes", self.config.sizes, SIZES),
        ):
            unknown = [v for v in chosen if v not in known]
            if unknown or not chosen:
                raise UserError(f"shapes.{name}: {unknown or 'empty'} not in {', '.join(known)}")
        # Class ids follow the full vocabulary's order, so a subset keeps the ids of the full data set.
        self.classes = [
            (class_id, combo)
            for class_id, combo in enumerate(product(COLOURS, SHAPES, SIZES))
            if combo[0] in self.config.colours and combo[1] in self.config.shapes and combo[2] in self.config.sizes
        ]

    def identity(self) -> dict[str, Any]:
        return {"source": "shapes", "seed": self.seed, "config": as_dict(self.config), "version": 1}

    def check(self) -> None:
        return None  # generated: nothing on disk to check

    def index(self) -> list[Record]:
        cfg = self.config
        n_test = round(cfg.images_per_class * cfg.test_fraction)
        records = []
        for class_id, (colour, shape, size) in self.classes:
            split_rng = np.random.default_rng([self.seed, class_id, 0])
            test_slots = set(split_rng.permutation(cfg.images_per_class)[:n_test].tolist())
            for j in range(cfg.images_per_class):
                rng = np.random.default_rng([self.seed, class_id, 1, j])
                bg = str(rng.choice(list(BACKGROUNDS)))
                radius = float(rng.uniform(*RADIUS[size]))
                attributes = {
                    "colour": colour,
                    "shape": shape,
                    "size": size,
                    "background": bg,
                    "grey": int(BACKGROUNDS[bg] + rng.integers(-12, 13)),
                    "radius": round(radius, 4),
                    "x": round(float(rng.uniform(radius, 1 - radius)), 4),
                    "y": round(float(rng.uniform(radius, 1 - radius)), 4),
                    "rotation": round(float(rng.uniform(0, 360)), 2),
                }
                templates = rng.choice(len(TEMPLATES), size=cfg.captions_per_image, replace=False)
                captions = tuple(
                    Caption(TEMPLATES[t].format(size=size, colour=colour, shape=shape, bg=bg)) for t in templates
                )
                records.append(
                    Record(
                        key=f"shapes-{class_id:02d}-{j:05d}",
                        split="test" if j in test_slots else "train",
                        class_id=class_id,
                        class_name=class_name(colour, shape, size),
                        image="",
                        captions=captions,
                        attributes=attributes,
                    )
                )
        return records

    def load_image(self, record: Record, size: int) -> Image.Image:
        return render(record.attributes, size)


def _polygon(shape: str, cx: float, cy: float, r: float, rotation: float) -> list[tuple[float, float]]:
    turn = math.radians(rotation)
    if shape == "square":
        corners = [(r, math.pi / 4 + k * math.pi / 2) for k in range(4)]
    elif shape == "triangle":
        corners = [(r, -math.pi / 2 + k * 2 * math.pi / 3) for k in range(3)]
    elif shape == "star":
        corners = [(r if k % 2 == 0 else 0.45 * r, -math.pi / 2 + k * math.pi / 5) for k in range(10)]
    else:
        raise ValueError(f"unknown shape {shape!r}")
    return [(cx + d * math.cos(a + turn), cy + d * math.sin(a + turn)) for d, a in corners]


def render(attributes: dict[str, Any], size: int) -> Image.Image:
    """Draw at 4x and downsample, which anti-aliases the edges."""
    scale = 4
    side = size * scale
    grey = attributes["grey"]
    image = Image.new("RGB", (side, side), (grey, grey, grey))
    draw = ImageDraw.Draw(image)
    cx, cy, r = attributes["x"] * side, attributes["y"] * side, attributes["radius"] * side
    colour = COLOURS[attributes["colour"]]
    if attributes["shape"] == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
    else:
        draw.polygon(_polygon(attributes["shape"], cx, cy, r, attributes["rotation"]), fill=colour)
    return image.resize((size, size), Image.Resampling.LANCZOS)


register_dataset(
    "shapes",
    ShapesSource,
    ShapesConfig,
    PrepareSource(
        "The embedded data set: coloured shapes with spoken captions, generated here (no download).\n\n"
        "Example: s2ikit prepare shapes --out runs/shapes/data --workers 2",
        (PrepareFlag("--images-per-class", "shapes.images_per_class", "Images per class (48 classes).", minimum=1),),
        root=False,
        tts=True,
    ),
    terms="The shapes data set is generated by s2ikit itself; no third-party terms apply to it.",
)
