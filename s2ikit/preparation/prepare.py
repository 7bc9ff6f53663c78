"""`s2ikit prepare`: index -> speech -> features -> images -> shards -> finalize, resumable and partitionable.

Output folder layout:
    index.jsonl                       every record (image, captions, class, split, attributes)
    work/<step>/<unit>.{npz,json}     intermediate outputs and the records of what produced them
    shards/<split>/shard-NNNNNN.tar   WebDataset shards; sizes.json beside them
    dataset.json                      classes, counts, settings and versions (written by finalize)
    failures.jsonl                    every skipped image (also those left out at index time) or caption, with the
                                      step and the reason
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from s2ikit import __version__
from s2ikit.config import as_dict
from s2ikit.data.dataset_info import write_dataset
from s2ikit.data.records import Record, read_index, write_index
from s2ikit.data.shards import write_sizes
from s2ikit.data.sources import get_source
from s2ikit.preparation.plan import Unit, partition, plan_units
from s2ikit.preparation.runner import run_units, unit_records
from s2ikit.preparation.steps import STEP_NAMES, STEPS, PrepareContext
from s2ikit.utils.atomic import fingerprint, read_json, remove_stale_temps, write_bytes, write_json
from s2ikit.utils.errors import UserError
from s2ikit.utils.progress import progress_bar
from s2ikit.utils.stop_signals import StopSignals

INDEX_VERSION = 2


@dataclass(frozen=True)
class RunOptions:
    workers: int = 1  # processes; 1 runs in this process
    num_partitions: int = 1  # split the units into this many deterministic slices ...
    partition: int | None = None  # ... and run only this one (None: all, then finalize)
    force: frozenset[str] = frozenset()  # steps to redo even when fresh
    finalize_only: bool = False  # only check that all partitions are done and write the totals


@dataclass
class PrepareReport:
    out: Path
    ran: dict[str, int] = field(default_factory=dict)  # step -> units it ran for
    units: int = 0  # units in this run's partition
    finalized: bool = False
    missing: list[str] = field(default_factory=list)  # units not yet done (other partitions)
    dataset: dict[str, Any] = field(default_factory=dict)  # dataset.json, once finalized
    seconds: float = 0.0


def ensure_index(ctx: PrepareContext, force: bool, warn: Callable[[str], None] = lambda line: None) -> list[Record]:
    """The index, rebuilt only when the source's identity changed (or forced). The source's warnings are kept
    in the index's record and passed to `warn` on every run, so a reused index still says them."""
    source = get_source(ctx.dataset, ctx.preset, ctx.root)
    path, rec_path = ctx.out / "index.jsonl", ctx.out / "work" / "index.json"
    expected = fingerprint({"step": "index", "version": INDEX_VERSION, "source": source.identity()})
    if not force and path.is_file() and rec_path.is_file():
        try:
            rec = read_json(rec_path)
            if rec.get("fingerprint") == expected:
                for line in rec.get("notes", []):
                    warn(line)
                return read_index(path)
        except ValueError:
            pass
    source.check()
    records = source.index()
    notes = list(source.notes)
    if source.left_out:
        first = source.left_out[0]["error"]
        notes.append(f"{ctx.dataset}: {len(source.left_out)} images left out (first: {first}); see failures.jsonl")
    for line in notes:
        warn(line)
    keys = Counter(r.key for r in records)
    duplicate = next((k for k, n in keys.items() if n > 1), None)
    if duplicate:
        raise UserError(f"{ctx.dataset}: sample key '{duplicate}' occurs {keys[duplicate]} times in the index")
    if not records:
        raise UserError(f"{ctx.dataset}: the index is empty; nothing to prepare")
    write_index(path, records)
    write_json(
        rec_path,
        {
            "step": "index",
            "fingerprint": expected,
            "records": len(records),
            "notes": notes,
            "left_out": source.left_out,
        },
    )
    return records


def prepare_output_folder(out: Path, whole_run: bool) -> None:
    """Create `out` (one line naming it when it cannot be a folder); a whole run also clears the temporary
    files a killed run left there. A partition leaves them to finalize: on a shared file system other hosts'
    processes may still be writing theirs."""
    for folder in (out, *out.parents):
        if folder.exists():
            if not folder.is_dir():
                where = "" if folder == out else f" {folder}"
                raise UserError(f"--out {out}:{where} is a file, not a folder")
            break
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"--out {out}: cannot create the folder ({e.strerror or e})") from None
    if whole_run:
        remove_stale_temps(out)


def prepare(ctx: PrepareContext, options: RunOptions, console: Console | None = None) -> PrepareReport:
    console = console or Console(stderr=True)
    unknown = sorted(set(options.force) - set(STEP_NAMES))
    if unknown:
        raise UserError(f"--force {unknown[0]}: unknown step (steps: {', '.join(STEP_NAMES)})")
    started = time.perf_counter()
    prepare_output_folder(ctx.out, whole_run=options.partition is None)
    records = ensure_index(
        ctx, "index" in options.force, lambda line: console.print(f"[yellow]warning:[/] {line}", highlight=False)
    )
    units = plan_units(records, ctx.preset.prepare.shard_size)
    report = PrepareReport(out=ctx.out)
    done: set[str] = set()  # units brought up to date by this run: no need to check them again
    if not options.finalize_only:
        mine = units if options.partition is None else partition(units, options.num_partitions, options.partition)
        report.units = len(mine)
        todo = [u for u in mine if options.force or unit_records(ctx, u) is None]
        if todo:
            # SIGTERM / SIGUSR1 (a cluster's stop) end the run here: finished units are kept, exit PREEMPTED
            with StopSignals(raise_now=True):
                report.ran = _run_with_progress(ctx, todo, options, console)
        done = {u.name for u in mine}
    report.missing = [u.name for u in units if u.name not in done and unit_records(ctx, u) is None]
    if not report.missing and (options.partition is None or options.finalize_only):
        report.dataset = finalize(ctx, records, units)
        report.finalized = True
    elif options.finalize_only:
        raise UserError(
            f"{ctx.out}: {len(report.missing)} of {len(units)} units are not done yet "
            f"(first: {report.missing[0]}); run the missing partitions, then --finalize again"
        )
    report.seconds = time.perf_counter() - started
    return report


def _run_with_progress(ctx: PrepareContext, todo: list[Unit], options: RunOptions, console: Console) -> dict[str, int]:
    n = sum(len(u.records) for u in todo)
    columns = (
        TextColumn("{task.description:>9}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("samples"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with progress_bar("samples", console, columns) as bar:  # off a terminal: plain lines with rate and ETA
        tasks = {step.name: bar.add_task(step.name, total=n) for step in STEPS}
        counts = run_units(ctx, todo, options.workers, options.force, lambda step, k: bar.advance(tasks[step], k))
        for task in tasks.values():
            bar.update(task, completed=n)
    return counts


def finalize(ctx: PrepareContext, records: list[Record], units: list[Unit]) -> dict[str, Any]:
    """Check every unit, then write sizes.json per split, failures.jsonl and dataset.json."""
    index_record = read_json(ctx.out / "work" / "index.json")
    failures: list[dict[str, Any]] = list(index_record.get("left_out", []))
    splits: dict[str, dict[str, Any]] = {}
    for unit in units:
        per_step = unit_records(ctx, unit)
        assert per_step is not None  # prepare() checked completeness
        split = splits.setdefault(unit.split, {"shards": {}, "samples": 0, "captions": 0, "images_indexed": 0})
        split["shards"][unit.shard_path.name] = per_step["shards"]["ok"]
        split["samples"] += per_step["shards"]["ok"]
        split["captions"] += per_step["features"]["ok"]  # captions with features (a few may belong to dropped samples)
        split["images_indexed"] += len(unit.records)
        for name in ("speech", "features", "images", "shards"):
            failures.extend(per_step[name]["failures"])
    for name, split in splits.items():
        write_sizes(ctx.out, name, split["shards"])
    lines = "".join(json.dumps(f, sort_keys=True) + "\n" for f in failures)
    write_bytes(ctx.out / "failures.jsonl", lines.encode(), only_if_changed=True)
    classes = sorted({(r.class_id, r.class_name) for r in records})
    dataset = {
        "dataset": ctx.dataset,
        "produced_by": f"s2ikit {__version__}",
        "classes": [name for _, name in classes],
        "class_ids": [cid for cid, _ in classes],
        "splits": {
            name: {k: v for k, v in split.items() if k != "shards"} | {"shards": sorted(split["shards"])}
            for name, split in sorted(splits.items())
        },
        "failures": len(failures),
        "failures_by_step": dict(Counter(f["step"] for f in failures)),
        "notes": index_record.get("notes", []),  # the index's warnings (non-standard split, counts)
        "settings": {
            "prepare": as_dict(ctx.preset.prepare),
            "features": as_dict(ctx.preset.features),
            "tts": as_dict(ctx.preset.tts) if get_source(ctx.dataset, ctx.preset, ctx.root).needs_tts else None,
            ctx.dataset: _source_settings(ctx),
        },
    }
    write_dataset(ctx.out, dataset)
    # Every unit is done, so any temporary file left is litter from a killed process (whose pid may be in use again).
    remove_stale_temps(ctx.out, keep_live=False)
    return dataset


def _source_settings(ctx: PrepareContext) -> Any:
    section = getattr(ctx.preset, ctx.dataset, None)
    return as_dict(section) if section is not None else None
