"""The evaluation report: `report.json` (every number and setting), `report.md` (tables and grids) and the grid
PNGs (for each shown caption: the real image, then its generated images, the caption under each)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from s2ikit.core.grid import save_grid
from s2ikit.metrics import REGISTRY, headline_of
from s2ikit.utils.atomic import read_json, write_bytes, write_json


def write_report(
    report: dict[str, Any],
    grid: list[dict[str, Any]],
    out_dir: Path,
    sections: list[tuple[str, list[str]]],
    figures: dict[str, tuple[torch.Tensor, list[str], int]] | None = None,
) -> Path:
    """`sections`: each metric's (title, report.md lines); `figures`: the metrics' own grids, by file name."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, (images, captions, columns) in (figures or {}).items():
        save_grid(images, captions, out_dir / name, columns)
    grids = _grids(grid, out_dir)
    report["grids"] = [str(p.name) for p in grids]
    write_json(out_dir / "report.json", report)
    write_bytes(out_dir / "report.md", markdown(report, sections).encode())
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


def _ended(name: str, status: dict[str, Any] | None) -> str:
    if not status:
        return f"{name}: not recorded"
    if status.get("reason") == "time_budget":
        return (f"{name}: **stopped by its time budget** ({status['time_budget_minutes']} min) at step "
                f"{status['step']} of {status['total_steps']}; its result depends on the machine's speed")  # fmt: skip
    return f"{name}: ended by its schedule at step {status['step']} of {status['total_steps']}"


def markdown(report: dict[str, Any], sections: list[tuple[str, list[str]]]) -> str:
    """The metrics' own sections, in the order they ran, between the run's header and its grids."""
    lines = [
        f"# Evaluation of {report['run'] or report['checkpoint']}",
        "",
        f"Checkpoint `{report['checkpoint']}` (step {report['step']}), data set **{report['dataset']}** "
        f"(`{report['data']}`), test split: {report['test_captions']} captions, {report['generated_images']} "
        # no wall time here (metrics.json keeps it): two runs of one setting give the same report
        f"generated images at {report['image_size']} px.",
        "",
    ]
    training = report.get("training") or {}
    lines += ["Training: " + "; ".join(_ended(n, training.get(n)) for n in ("encoder", "gan")) + ".", ""]
    if "selection" in report:
        sel = report["selection"]
        steps = ", ".join(str(c["step"]) for c in sel["candidates"])
        lines += [
            f"The checkpoint was chosen by `s2ikit select` among the run's kept generators (steps {steps}): the "
            f"judge's {sel['criterion']} accuracy on {sel['captions']} *training* captions, one image each. The "
            "test split played no part in the choice.",
            "",
        ]
    for title, section in sections:
        lines += [f"## {title}", "", *section, ""]
    if "fid" in report["metrics"]:
        lines += ["## FID protocol", "", fid_protocol(report), ""]
    if report.get("curves"):
        lines += ["## Training curves", "", "Each statistic of metrics.jsonl against the step (means over each log "
                  "interval); with `s2ikit select`, the judge's accuracy of each kept checkpoint.", "",
                  f"![curves]({report['curves']})", ""]  # fmt: skip
    if report["skipped"]:
        lines += ["## Skipped", ""]
        lines += [f"- **{name}**: {reason}" for name, reason in report["skipped"].items()]
        lines.append("")
    lines += ["## Samples", "", "Each row: the real test image, then the images generated from its caption.", ""]
    lines += [f"![grid]({name})" for name in report["grids"]]
    return "\n".join(lines) + "\n"


# ---- the report's headline numbers, for the model card (`s2ikit export`) and TensorBoard ---------------------
def headline_numbers(metrics: dict[str, Any]) -> dict[str, float]:
    """`metric/field` (`metric/field/part` for a per-attribute or per-k field) -> value, e.g. `fid/value`: the
    fields each metric that ran declares as its `headline`, in the order they ran."""
    numbers: dict[str, float] = {}
    for name, result in metrics.items():
        if name in REGISTRY:  # a plug-in's report read where the plug-in is not installed has no known headline
            numbers.update(headline_of(name, REGISTRY[name].headline, result))
    return numbers


def fid_protocol(report: dict[str, Any]) -> str:
    """Which published FID protocol this report's FID follows, from the counts it was measured with.

    S2IGAN's: one image per test caption against the real test images (pytorch-fid). DF-GAN's: 30,000
    generated images (the test captions cycled) against the test images' statistics. Both use the TF
    Inception-v3 of 2015-12-05; s2ikit's extractor is torch-fidelity's port of it with TF's resize, where
    pytorch-fid resizes with torch's bilinear interpolation, so expect small differences at equal counts."""
    fid, per_caption = report["metrics"]["fid"], report["settings"].get("images_per_caption")
    counts = f"{fid['generated_images']} generated vs {fid['real_images']} real test images"
    if fid.get("protocol_name") == "dfgan":
        return (f"DF-GAN's protocol (evaluate.fid_protocol = \"dfgan\"): generated images from the cycled test "
                f"captions against the test images enlarged by flips and shifts ({counts}). Compare with "
                "DF-GAN-style FIDs only.")  # fmt: skip
    if per_caption == 1:
        return f"S2IGAN's protocol: one image per test caption ({counts}). Compare with S2IGAN-style FIDs."
    if fid["generated_images"] >= 30_000:
        return f"DF-GAN's count: at least 30,000 generated images ({counts}). Compare with DF-GAN-style FIDs."
    return (f"{counts}: neither S2IGAN's count (one image per test caption) nor DF-GAN's (30,000 generated); "
            "compare only with FIDs measured with the same counts.")  # fmt: skip


def read_summary(path: Path) -> dict[str, Any] | None:
    """A report.json's step, counts, headline numbers and FID protocol; None when there is no report."""
    if not path.is_file():
        return None
    report = read_json(path)
    summary = {k: report.get(k) for k in ("step", "dataset", "test_captions", "generated_images", "checkpoint")}
    # the numbers the evaluation recorded; a report from before they were recorded: from its metrics' results
    summary["numbers"] = report["headline"] if "headline" in report else headline_numbers(report.get("metrics", {}))
    if "fid" in report.get("metrics", {}):
        summary["fid_protocol"] = fid_protocol(report)
    return summary
