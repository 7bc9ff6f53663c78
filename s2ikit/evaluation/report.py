"""The evaluation report: `report.json` (every number and setting), `report.md` (tables and grids) and the grid
PNGs (for each shown caption: the real image, then its generated images, the caption under each)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from s2ikit.evaluation.grid import save_grid
from s2ikit.utils.atomic import write_bytes, write_json


def write_report(report: dict[str, Any], grid: list[dict[str, Any]], out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    grids = _grids(grid, out_dir)
    report["grids"] = [str(p.name) for p in grids]
    write_json(out_dir / "report.json", report)
    write_bytes(out_dir / "report.md", markdown(report).encode())
    return out_dir / "report.md"


def _grids(grid: list[dict[str, Any]], out_dir: Path, per_file: int = 8) -> list[Path]:
    """Groups of (real, generated x k), several per row when k is small; `per_file` captions per PNG."""
    paths = []
    for start in range(0, len(grid), per_file):
        rows = grid[start : start + per_file]
        k = rows[0]["generated"].shape[0]
        images, captions = [], []
        for row in rows:
            size = row["generated"].shape[-1]
            real = torch.nn.functional.interpolate(row["real"][None], size=(size, size), mode="area")[0]
            images += [real, *row["generated"]]
            captions += [f"REAL: {row['text']}"] + [row["text"]] * k
        columns = (k + 1) * max(1, 8 // (k + 1))  # several captions side by side when each has few images
        paths.append(save_grid(torch.stack(images), captions, out_dir / f"grid-{start // per_file:02d}.png", columns))
    return paths


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# Evaluation of {report['run']}",
        "",
        f"Checkpoint `{report['checkpoint']}` (step {report['step']}), data set **{report['dataset']}** "
        f"(`{report['data']}`), test split: {report['test_captions']} captions, {report['generated_images']} "
        f"generated images at {report['image_size']} px, in {report['seconds']} s.",
        "",
    ]
    if "selection" in report:
        sel = report["selection"]
        steps = ", ".join(str(c["step"]) for c in sel["candidates"])
        lines += [
            f"The checkpoint was chosen by `s2ikit select` among the run's kept generators (steps {steps}): the "
            f"judge's {sel['criterion']} accuracy on {sel['captions']} *training* captions, one image each. The "
            "test split played no part in the choice.",
            "",
        ]
    if "class_accuracy" in report:
        lines += [
            "## Class accuracy of generated images",
            "",
            "A classifier trained on real images judges whether each generated image shows its caption's "
            f"label. It was trained on the {report['judge']['trained_on']}.",
            "",
            "| label | generated | real (judge calibration) |",
            "|---|---|---|",
        ]
        real = report["judge"].get("real_accuracy", {})
        for head, value in report["class_accuracy"].items():
            lines.append(f"| {head} | {_pct(value)} | {_pct(real[head]) if head in real else '-'} |")
        for head, values in report.get("class_accuracy_by_value", {}).items():
            shown = ", ".join(f"{v} {_pct(r['accuracy'])} ({r['images']})" for v, r in values.items())
            lines += ["", f"By {head} (generated images judged right, of how many): {shown}."]
    if "fid" in report:
        fid, inception = report["fid"], report["inception_score"]
        lines += [
            "",
            "## FID and IS",
            "",
            f"FID **{fid['value']:.2f}** ({fid['generated_images']} generated vs {fid['real_images']} real test "
            f"images, real images resized to {fid['real_resized_to']} px first; {fid['protocol']}; "
            f"extractor {fid['extractor']}). IS **{inception['mean']:.2f} +- {inception['std']:.2f}** "
            f"({inception['splits']} splits). Compare only with numbers from the same weights, resize and count.",
        ]
    if "s2igan_retrieval" in report:
        r = report["s2igan_retrieval"]
        lines += ["", "## Real-image queries against generated images (S2IGAN's mAP and R@k)", ""]
        if "mAP" in r:
            lines.append(f"mAP **{_pct(r['mAP'])}** ({r['mAP_queries']} queries vs {r['mAP_gallery']} generated).")
        lines.append(
            ", ".join(f"{k} {_pct(v)}" for k, v in r.items() if k.startswith("R@"))
            + f" ({r['queries']} queries vs {r['gallery']} generated)."
        )
    if "encoder_retrieval" in report:
        e = report["encoder_retrieval"]
        real, gen = e["real_test_images"], e["caption_to_generated"]
        lines += [
            "",
            "## Speech encoder retrieval",
            "",
            "Real test images: " + ", ".join(f"{k} {_pct(v)}" for k, v in real.items() if k.startswith("s2i")) + ".",
            "",
            "Each caption against all generated images (is its own picture the one it points to?): "
            + ", ".join(f"{k} {_pct(v)}" for k, v in gen.items())
            + ".",
        ]
    if report["skipped"]:
        lines += ["", "## Skipped", ""]
        lines += [f"- **{name}**: {reason}" for name, reason in report["skipped"].items()]
    lines += ["", "## Samples", "", "Each row: the real test image, then the images generated from its caption.", ""]
    lines += [f"![grid]({name})" for name in report["grids"]]
    return "\n".join(lines) + "\n"
