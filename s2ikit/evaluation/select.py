"""`s2ikit select`: pick a run's best kept generator by the judge, on *training* captions only.

GAN quality swings from checkpoint to checkpoint: on shapes the judge's shape accuracy of one run moves by up
to 10 points between checkpoints 200 steps apart, and the last checkpoint is often not the best. With
gan.keep_generators on, `train-gan` keeps every checkpoint's EMA generator; this ranks them by the class-accuracy
judge of `s2ikit evaluate` (the same cached judge) on up to `evaluate.select_captions` training captions, one
image each, and copies the winner to checkpoints/best.pt, with checkpoints/selection.json saying why.
No test caption is used and the judge learns from training images only (the real test images only give it a
calibration number), so `s2ikit evaluate RUN/checkpoints/best.pt` stays an honest held-out figure.

Unseen-class splits (CUB, Oxford) are refused: their judge learns only test classes, so it cannot judge images
made from training captions.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from s2ikit.config import EvaluateConfig, LoaderConfig
from s2ikit.data.loader import make_loader
from s2ikit.evaluation.generation import GENERATOR_FILE, GeneratorBundle, generate_images, load_bundle
from s2ikit.evaluation.judge import Judge, image_labels, load_or_train_judge
from s2ikit.training.gan import GENERATORS
from s2ikit.utils.atomic import atomic_path, write_json
from s2ikit.utils.errors import UserError

BEST, SELECTION = Path("checkpoints") / "best.pt", Path("checkpoints") / "selection.json"


def kept_generators(run_dir: Path) -> list[Path]:
    """The run's kept generators, oldest first, and its last generator.pt when no kept file has its step."""
    kept = sorted((run_dir / GENERATORS).glob("step-*.pt"))
    if not kept:
        raise UserError(
            f"{run_dir / GENERATORS}: no kept generators; train with --set gan.keep_generators=true "
            "(the shapes preset does) so that `select` has checkpoints to choose from"
        )
    last = run_dir / GENERATOR_FILE
    if last.is_file() and f"step-{load_bundle(last).info['step']:07d}.pt" not in {p.name for p in kept}:
        kept.append(last)
    return kept


def training_captions(
    bundle: GeneratorBundle, data_dir: Path, judge: Judge, limit: int
) -> tuple[torch.Tensor, list[dict[str, Any]]]:
    """Speech embeddings and judge labels of at most `limit` training captions, every k-th row of the split
    (shards are often ordered by class, so a prefix would judge a few classes only)."""
    total = json.loads((data_dir / "dataset.json").read_text())["splits"]["train"]["captions"]
    stride, row = max(1, math.ceil(total / limit)), 0
    speech, labels = [], []
    loader = make_loader(data_dir, LoaderConfig(split="train", mode="test", batch_size=64))
    with torch.no_grad():
        for batch in loader:
            n = len(batch["key"])
            take = [i for i in range(n) if (row + i) % stride == 0][: limit - len(labels)]
            row += n
            if not take:
                continue
            lengths = batch["mel_lengths"][take]
            mel = batch["mel"][take, : int(lengths.max())]  # padding cut to the rows taken
            speech.append(bundle.speech_encoder(mel.to(bundle.device), lengths.to(bundle.device)).float())
            labels += [
                image_labels(int(batch["class_id"][i]), batch["attributes"][i], tuple(judge.vocab)) for i in take
            ]
            if len(labels) >= limit:
                break
    if not labels:
        raise UserError(f"{data_dir}: the training split has no captions to judge generators on")
    return torch.cat(speech), labels


def judge_generator(
    bundle: GeneratorBundle, speech: torch.Tensor, labels: list[dict[str, Any]], judge: Judge, seed: int
) -> dict[str, float]:
    """Judge accuracy per head of one image per caption (z as `evaluate` draws it, row by row)."""
    hits: dict[str, list[torch.Tensor]] = {}
    for start in range(0, len(labels), 64):
        images = generate_images(bundle, speech[start : start + 64], 1, seed, first_row=start).flatten(0, 1)
        for head, ok in judge.correct(images, labels[start : start + 64]).items():
            hits.setdefault(head, []).append(ok)
    return {head: float(torch.cat(ok).float().mean()) for head, ok in hits.items()}


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
    first = load_bundle(candidates[-1]).to(device)
    data_dir = Path(data_dir or first.info["data"])
    judge = load_or_train_judge(data_dir, first.generator.image_size, config, device, log)
    speech, labels = training_captions(first, data_dir, judge, config.select_captions)
    unknown = int(judge.targets(labels, "class").lt(0).sum()) if "class" in judge.vocab else 0
    if unknown > len(labels) // 2:
        raise UserError(
            f"{data_dir}: the judge was trained on the test split's classes only (unseen-class split), so it "
            "cannot judge images made from training captions; evaluate the run's generator.pt instead"
        )
    log(f"judging {len(candidates)} generators on {len(labels)} training captions (one image each)")
    ranked = []
    for path in candidates:
        bundle = load_bundle(path).to(device)
        accuracy = judge_generator(bundle, speech, labels, judge, config.seed)
        ranked.append({"checkpoint": str(path), "step": bundle.info["step"], "accuracy": accuracy})
        shown = ", ".join(f"{head} {100 * v:.1f}%" for head, v in accuracy.items())
        log(f"step {bundle.info['step']}: {shown}")
    # the later checkpoint wins a tie: it has trained longer on the same evidence
    best = max(ranked, key=lambda r: (criterion(r["accuracy"]), r["step"]))
    with atomic_path(run_dir / BEST) as tmp:
        shutil.copyfile(best["checkpoint"], tmp)
    selection = {
        "selected": str(run_dir / BEST), "step": best["step"], "source": best["checkpoint"],
        "criterion": "class" if "class" in judge.vocab else "mean of " + ", ".join(judge.vocab),
        "captions": len(labels), "split": "train", "judge": judge.info, "candidates": ranked,
    }  # fmt: skip
    write_json(run_dir / SELECTION, selection)
    return selection
