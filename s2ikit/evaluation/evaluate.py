"""`s2ikit evaluate`: generate images for every test caption with the EMA generator and run the metrics on them.

One pass over the test split (every caption; `images_per_caption` images each, z a pure function of (seed,
caption row, k)) feeds every metric asked for, by name (`evaluate.metrics`, or `--metrics`; each registered in
s2ikit/metrics/). A metric that cannot run here (missing weights, no classes) is skipped with the reason; the
others still run. Each metric that ran gives its report section, its headline numbers (report.json's `headline`,
TensorBoard, the model card) and its one-line summary. The report says how the training runs ended.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from s2ikit.config import EvaluateConfig, LoaderConfig, as_dict
from s2ikit.core import checkpoints
from s2ikit.core.inference import GeneratorBundle, load_bundle
from s2ikit.data.dataset_info import read_dataset
from s2ikit.data.loader import make_loader
from s2ikit.evaluation.curves import write_curves
from s2ikit.evaluation.report import write_report
from s2ikit.metrics import Context, Generated, build_metrics, check_names, headline_of, measure
from s2ikit.utils.atomic import read_json
from s2ikit.utils.errors import UserError
from s2ikit.utils.progress import track
from s2ikit.utils.tensorboard_log import EVENTS_DIR, TensorBoardLog


def evaluate(
    run: str | Path,
    config: EvaluateConfig,
    out_dir: Path | None = None,
    data_dir: Path | None = None,
    fidelity_weights: str = "",
    inception_weights: str = "",
    device: torch.device | None = None,
    log: Callable[[str], None] = print,
    metrics: tuple[str, ...] | None = None,
    metrics_from: str = "--metrics",
) -> dict[str, Any]:
    """`metrics`: the names to run, where `metrics_from` (a flag, or a preset file and key) set them; None:
    `config.metrics`. An unknown name is refused, naming where it was set, before anything is loaded."""
    started = time.monotonic()
    names = check_names(config.metrics, "evaluate.metrics") if metrics is None else check_names(metrics, metrics_from)
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    bundle = load_bundle(run).to(device)
    data = read_dataset(data_dir or bundle.info["data"])
    run_dir = checkpoints.run_of(bundle.path)  # None for a generator.pt copied out of its run
    out_dir = Path(out_dir or (run_dir or bundle.path.parent) / "eval")
    existing = next(p for p in (out_dir, *out_dir.parents) if p.exists())  # a file there would fail only at the end
    if not existing.is_dir():
        raise UserError(f"{out_dir}: the report folder, but {existing} is a file; choose another --out folder")
    size = bundle.generator.image_size
    report: dict[str, Any] = {
        "run": str(run_dir) if run_dir else None, "checkpoint": str(bundle.path), "step": bundle.info["step"],
        "data": str(data.root), "dataset": data.dataset, "settings": as_dict(config), "image_size": size,
        "training": training_status(bundle, run_dir),
    }  # fmt: skip
    selection = _selection_of(bundle, run_dir)
    if selection:
        report["selection"] = selection
    ctx = Context(bundle, data, config, device, log, fidelity_weights, inception_weights)
    active, report["skipped"] = build_metrics(names, ctx)
    log(f"generating {config.images_per_caption} image(s) per test caption at {size} px")
    grid = GridCollector(config.grid_captions)
    loader = make_loader(data.root, LoaderConfig(split="test", mode="test", batch_size=config.batch_size))
    total = -(-data.splits["test"].captions // config.batch_size)  # every caption, in full batches but the last
    batches = track(loader, total, "evaluate: generating", "batches")
    captions = measure(bundle, batches, active.values(), config.images_per_caption, config.seed, grid)
    report["test_captions"] = captions
    report["generated_images"] = captions * config.images_per_caption
    report["metrics"] = results = {name: metric.compute() for name, metric in active.items()}
    sections = [(metric.title, metric.section(results[name])) for name, metric in active.items()]
    report["headline"] = {}
    for name, metric in active.items():
        report["headline"].update(headline_of(name, metric.headline, results[name]))
    report["summary"] = {name: metric.summary(results[name]) for name, metric in active.items()}
    report["seconds"] = round(time.monotonic() - started, 1)
    report["report"] = str(out_dir / "report.md")
    report["curves"] = write_curves(run_dir, out_dir) if run_dir else None
    figures = {name: figure for metric in active.values() for name, figure in metric.figures().items()}
    write_report(report, grid.rows, out_dir, sections, figures)
    # the run's TensorBoard (when training wrote one): the numbers at their step
    if run_dir and (run_dir / EVENTS_DIR).is_dir():
        events = TensorBoardLog(run_dir / EVENTS_DIR)
        events.scalars(report["headline"], int(bundle.info["step"]), prefix="eval/")
        events.close()
    return report


class GridCollector:
    """One caption per class (per image when there are no classes) until `n` are shown: the report's grids."""

    def __init__(self, n: int):
        self.n, self.rows, self.shown = n, [], set()

    def __call__(self, generated: Generated) -> None:
        batch, k = generated.batch, generated.k
        for i in range(len(batch["key"])):
            shown = int(batch["class_id"][i]) if int(batch["class_id"][i]) >= 0 else batch["key"][i]
            if len(self.rows) < self.n and shown not in self.shown:
                self.shown.add(shown)
                self.rows.append(
                    {"text": batch["text"][i], "real": batch["image"][i],
                     "generated": generated.images[i * k : (i + 1) * k].cpu()}
                )  # fmt: skip


def training_status(bundle: GeneratorBundle, run_dir: Path | None) -> dict[str, Any]:
    """How the GAN run (and, when its folder is still there, the encoder run) ended: by their schedules, or
    stopped early by a time budget. `run_dir`: the checkpoint's run folder, None outside one."""
    # a checkpoint records how the run ended only when it is the run's last; an earlier kept generator (the one
    # `select` chose, say) finds it in its run's status.json, written when the run ended
    gan_status = run_dir / checkpoints.RUN_STATUS if run_dir is not None else None
    encoder_status = Path(str(bundle.info.get("encoder_run") or "")) / checkpoints.RUN_STATUS
    return {
        "gan": bundle.info.get("stopped") or (read_json(gan_status) if gan_status and gan_status.is_file() else None),
        "encoder": read_json(encoder_status) if encoder_status.is_file() else None,
    }


def _selection_of(bundle: GeneratorBundle, run_dir: Path | None) -> dict[str, Any] | None:
    """`s2ikit select`'s record, when the checkpoint evaluated is the one it chose (and not retrained since)."""
    if run_dir is None:
        return None
    best, record = run_dir / checkpoints.BEST_GENERATOR, run_dir / checkpoints.SELECTION
    if bundle.path.resolve() != best.resolve() or not record.is_file():
        return None
    selection = read_json(record)
    return selection if selection.get("step") == bundle.info["step"] else None
