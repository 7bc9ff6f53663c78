"""`s2ikit select`: pick a run's best kept generator by the `class_accuracy` metric, on *training* captions only.

GAN quality swings from checkpoint to checkpoint, so the last checkpoint is often not the best
(docs/experiments/shapes-speech-noise-and-select.md). With
gan.keep_generators on, `train-gan` keeps every checkpoint's EMA generator; this runs the `class_accuracy` metric
(the judge of `s2ikit evaluate`, from the same cache) over each of them on up to `evaluate.select_captions`
training captions, one image each, and copies the winner to checkpoints/best.pt, with checkpoints/selection.json
saying why. No test caption is used and the judge learns from training images only (the real test images only
give it a calibration number), so `s2ikit evaluate RUN/checkpoints/best.pt` stays an honest held-out figure.

Unseen-class splits (CUB, Oxford) are refused: their judge learns only test classes, so it cannot judge images
made from training captions.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from s2ikit.config import EvaluateConfig, LoaderConfig
from s2ikit.core import checkpoints
from s2ikit.core.inference import load_bundle
from s2ikit.data.dataset_info import DatasetInfo, read_dataset
from s2ikit.data.loader import make_loader
from s2ikit.metrics import Context, build_metrics, measure
from s2ikit.metrics.class_accuracy import ClassAccuracy
from s2ikit.utils.atomic import atomic_path, write_json
from s2ikit.utils.errors import UserError
from s2ikit.utils.progress import track


def kept_generators(run_dir: Path) -> list[Path]:
    """The run's kept generators, oldest first, and its last generator.pt when no kept file has its step."""
    kept = sorted((run_dir / checkpoints.KEPT_GENERATORS).glob("step-*.pt"))
    if not kept:
        raise UserError(
            f"{run_dir / checkpoints.KEPT_GENERATORS}: no kept generators; train with --set gan.keep_generators=true "
            "(the shapes preset does) so that `select` has checkpoints to choose from"
        )
    last = run_dir / checkpoints.GENERATOR
    if last.is_file():
        try:
            step = load_bundle(last).info["step"]
        except UserError:
            step = None  # unreadable: judged, that is skipped with its reason, like a damaged kept one
        if step is None or checkpoints.kept_generator(step).name not in {p.name for p in kept}:
            kept.append(last)
    return kept


def training_captions(data: DatasetInfo, limit: int) -> list[dict[str, Any]]:
    """At most `limit` training captions, every k-th row of the split (shards are often ordered by class, so a
    prefix would judge a few classes only), as batches of the loader's rows (padding cut to the rows taken)."""
    stride, row = max(1, math.ceil(data.splits["train"].captions / limit)), 0
    batches, taken = [], 0
    for batch in make_loader(data.root, LoaderConfig(split="train", mode="test", batch_size=64)):
        n = len(batch["key"])
        take = [i for i in range(n) if (row + i) % stride == 0][: limit - taken]
        row += n
        if take:
            batches.append(_rows(batch, take))
            taken += len(take)
        if taken >= limit:
            break
    if not batches:
        raise UserError(f"{data.root}: the training split has no captions to judge generators on")
    return batches


def _rows(batch: dict[str, Any], rows: list[int]) -> dict[str, Any]:
    lengths = batch["mel_lengths"][rows]
    out = {k: (v[rows] if torch.is_tensor(v) else [v[i] for i in rows]) for k, v in batch.items()}
    out["mel"] = out["mel"][:, : int(lengths.max())]
    return out


def criterion(accuracy: dict[str, float]) -> float:
    """The class head when the data set has classes, else the mean over the judged attributes."""
    return accuracy["class"] if "class" in accuracy else sum(accuracy.values()) / len(accuracy)


def select_generator(
    run_dir: Path,
    config: EvaluateConfig,
    data_dir: Path | None = None,
    device: torch.device | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    run_dir = Path(run_dir)
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    candidates = kept_generators(run_dir)
    skipped: list[dict[str, str]] = []  # damaged or unreadable generators: reported, and the rest judged
    first = next((b for p in reversed(candidates) if (b := _readable(p, device, skipped, log)) is not None), None)
    if first is None:
        raise UserError(f"{run_dir}: none of its {len(candidates)} generators can be read ({skipped[-1]['error']})")
    data = read_dataset(data_dir or first.info["data"])
    ctx = Context(first, data, config, device, log)
    captions = training_captions(data, config.select_captions)
    probe = ClassAccuracy(ctx)
    probe.setup()
    labels = [label for batch in captions for label in probe.labels_of(batch)]
    judge = probe.judge
    unknown = int(judge.targets(labels, "class").lt(0).sum()) if "class" in judge.vocab else 0
    if unknown > len(labels) // 2:
        raise UserError(
            f"{data.root}: the judge was trained on the test split's classes only (unseen-class split), so it "
            "cannot judge images made from training captions; evaluate the run's generator.pt instead"
        )
    log(f"judging {len(candidates)} generators on {len(labels)} training captions (one image each)")
    ranked = []
    for path in candidates:
        bundle = _readable(path, device, skipped, log)
        if bundle is None:
            continue
        ctx.bundle = bundle
        metrics, _ = build_metrics(["class_accuracy"], ctx)  # the judge is shared through ctx: trained once
        batches = track(captions, len(captions), f"select: step {ctx.bundle.info['step']}", "batches")
        measure(ctx.bundle, batches, metrics.values(), 1, config.seed)
        accuracy = metrics["class_accuracy"].compute()["accuracy"]
        ranked.append({"checkpoint": str(path), "step": ctx.bundle.info["step"], "accuracy": accuracy})
        shown = ", ".join(f"{head} {100 * v:.1f}%" for head, v in accuracy.items())
        log(f"step {ctx.bundle.info['step']}: {shown}")
    # the later checkpoint wins a tie: it has trained longer on the same evidence
    best = max(ranked, key=lambda r: (criterion(r["accuracy"]), r["step"]))
    with atomic_path(run_dir / checkpoints.BEST_GENERATOR) as tmp:
        shutil.copyfile(best["checkpoint"], tmp)
    selection = {
        "selected": str(run_dir / checkpoints.BEST_GENERATOR), "step": best["step"], "source": best["checkpoint"],
        "criterion": "class" if "class" in judge.vocab else "mean of " + ", ".join(judge.vocab),
        "captions": len(labels), "split": "train", "judge": judge.info, "candidates": ranked, "skipped": skipped,
    }  # fmt: skip
    write_json(run_dir / checkpoints.SELECTION, selection)
    return selection


def _readable(path: Path, device: torch.device, skipped: list[dict[str, str]], log: Callable[[str], None]) -> Any:
    """The generator bundle of `path`, or None for a damaged or unreadable file, which is recorded in `skipped`
    and logged (once)."""
    if any(entry["checkpoint"] == str(path) for entry in skipped):
        return None
    try:
        return load_bundle(path).to(device)
    except UserError as e:
        skipped.append({"checkpoint": str(path), "error": str(e)})
        log(f"skipped: {e}")  # the error names the file
        return None
