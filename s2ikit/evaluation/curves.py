"""Training curves for the evaluation report, drawn with PIL into one PNG (curves.png beside the grids).

One small panel per statistic of the GAN run's metrics.jsonl (the mean over each log interval, against the
step) and, when `s2ikit select` ran, one panel with the judge's accuracy of each kept checkpoint on training
captions (one line per judged attribute). Each panel's axis labels give its step and value ranges.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from s2ikit.core.checkpoints import SELECTION
from s2ikit.utils.atomic import atomic_path, read_json

METRICS = "metrics.jsonl"  # the training engine's log: one record per log interval
NOT_CURVES = ("step", "epoch", "seconds")  # record fields that are positions, not measurements
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")
PANEL_W, PANEL_H, MARGIN = 300, 190, 44

Series = dict[str, list[tuple[float, float]]]  # label -> (step, value) points, in step order


@dataclass
class Panel:
    title: str
    series: Series


def loss_series(path: Path) -> Series:
    """Each statistic of metrics.jsonl against its step; event lines (a time-budget stop) and torn lines skipped."""
    series: Series = {}
    if not path.is_file():
        return series
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if not isinstance(record, dict) or "event" in record or "step" not in record:
            continue
        for key, value in record.items():
            if key not in NOT_CURVES and isinstance(value, (int, float)) and not isinstance(value, bool):
                if math.isfinite(value):
                    series.setdefault(key, []).append((float(record["step"]), float(value)))
    return {k: sorted(v) for k, v in series.items()}


def selection_series(path: Path) -> Series:
    """The judge's accuracy per attribute of each kept checkpoint that `select` judged."""
    if not path.is_file():
        return {}
    series: Series = {}
    for candidate in read_json(path).get("candidates", []):
        for head, value in candidate.get("accuracy", {}).items():
            series.setdefault(head, []).append((float(candidate["step"]), float(value)))
    return {k: sorted(v) for k, v in series.items()}


def run_panels(run_dir: Path) -> list[Panel]:
    panels = [Panel(key, {key: points}) for key, points in loss_series(run_dir / METRICS).items()]
    judged = selection_series(run_dir / SELECTION)
    if judged:
        panels.append(Panel("judge accuracy (select, training captions)", judged))
    return panels


def _label(value: float) -> str:
    return f"{value:.3g}"


def _draw_panel(draw: ImageDraw.ImageDraw, panel: Panel, x0: int, y0: int, font) -> None:
    left, top, right, bottom = x0 + MARGIN, y0 + 18, x0 + PANEL_W - 10, y0 + PANEL_H - 28
    draw.text((x0 + 6, y0 + 3), panel.title[:48], fill="black", font=font)
    draw.rectangle((left, top, right, bottom), outline="#888888")
    points = [p for pts in panel.series.values() for p in pts]
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x_lo, x_hi = min(xs), max(xs)
    y_lo, y_hi = min(ys), max(ys)
    if y_hi == y_lo:  # a flat line: centre it
        y_lo, y_hi = y_lo - 0.5, y_hi + 0.5

    def at(x: float, y: float) -> tuple[float, float]:
        fx = 0.5 if x_hi == x_lo else (x - x_lo) / (x_hi - x_lo)
        return left + 3 + fx * (right - left - 6), bottom - 3 - (y - y_lo) / (y_hi - y_lo) * (bottom - top - 6)

    draw.text((x0 + 2, top), _label(y_hi), fill="#444444", font=font)
    draw.text((x0 + 2, bottom - 11), _label(y_lo), fill="#444444", font=font)
    draw.text((left, bottom + 3), f"step {x_lo:g}", fill="#444444", font=font)
    end = f"{x_hi:g}"
    draw.text((right - 6 * len(end), bottom + 3), end, fill="#444444", font=font)
    for i, (label, pts) in enumerate(panel.series.items()):
        colour = COLOURS[i % len(COLOURS)]
        line = [at(x, y) for x, y in pts]
        if len(line) > 1:
            draw.line(line, fill=colour, width=2)
        for px, py in line if len(line) <= 40 else []:  # markers where there are few points (kept checkpoints)
            draw.ellipse((px - 2, py - 2, px + 2, py + 2), fill=colour)
        if len(panel.series) > 1:
            draw.text((left + 4 + 70 * i, bottom + 14), label[:11], fill=colour, font=font)


def draw_curves(panels: list[Panel], path: Path, columns: int = 4) -> Path:
    """The panels in rows of `columns`, written atomically as a PNG."""
    columns = max(1, min(columns, len(panels)))
    rows = math.ceil(len(panels) / columns)
    image = Image.new("RGB", (columns * PANEL_W, rows * PANEL_H), "white")
    draw, font = ImageDraw.Draw(image), ImageFont.load_default()
    for i, panel in enumerate(panels):
        _draw_panel(draw, panel, (i % columns) * PANEL_W, (i // columns) * PANEL_H, font)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
    return path


def write_curves(run_dir: Path, out_dir: Path, name: str = "curves.png") -> str | None:
    """out_dir/curves.png from the run's records; its file name, or None when the run left nothing to draw."""
    panels = run_panels(Path(run_dir))
    if not panels:
        return None
    out_dir.mkdir(parents=True, exist_ok=True)
    draw_curves(panels, out_dir / name)
    return name
