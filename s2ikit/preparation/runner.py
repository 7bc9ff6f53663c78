"""Runs the per-unit steps, skipping every output that is already fresh.

An output is fresh when its record (`work/<step>/<unit>.json`) carries the fingerprint expected now: a hash of
the step's version, the settings that shape it, the sha256 of each input and the size and mtime of each data set
file it reads (recordings, photos). Inputs are chained through those
hashes, so redoing a step that reproduces the same bytes leaves everything downstream fresh, and changing a
setting redoes exactly the steps it reaches. Outputs and records are written atomically (output first), so a
run killed at any moment leaves only complete files, and the next run picks up where it stopped.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import queue as queue_mod
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from s2ikit import __version__
from s2ikit.preparation.plan import Unit
from s2ikit.preparation.steps import STEPS, PrepareContext, Resources, Step, Tick, source_stamps
from s2ikit.utils.atomic import file_sha256, fingerprint, read_json, write_json
from s2ikit.utils.stop_signals import STOP_SIGNALS, StopRequested

STEP_BY_NAME = {s.name: s for s in STEPS}


def record_path(out: Path, step: str, unit: Unit) -> Path:
    return out / "work" / step / f"{unit.name}.json"


def _fresh_record(ctx: PrepareContext, step: Step, unit: Unit, expected: str) -> dict[str, Any] | None:
    path = record_path(ctx.out, step.name, unit)
    try:
        record = read_json(path)
    except (OSError, ValueError):
        return None
    output = ctx.out / step.output(unit)
    if record.get("fingerprint") != expected or not output.is_file() or output.stat().st_size != record.get("bytes"):
        return None
    return record


def _expected(ctx: PrepareContext, step: Step, unit: Unit, hashes: dict[str, str]) -> str:
    identity = {
        "step": step.name,
        "version": step.version,
        "settings": step.settings(ctx),
        "inputs": {name: hashes[name] for name in step.inputs},
    }
    sources = source_stamps(ctx, step, unit)
    if sources:  # generated data (shapes) reads no file: its fingerprints stay as they were
        identity["sources"] = sources
    return fingerprint(identity)


def unit_records(ctx: PrepareContext, unit: Unit) -> dict[str, dict[str, Any]] | None:
    """Every step's fresh record for `unit`, or None if some step must run."""
    hashes, records = {"records": unit.records_hash()}, {}
    for step in STEPS:
        record = _fresh_record(ctx, step, unit, _expected(ctx, step, unit, hashes))
        if record is None:
            return None
        hashes[step.name], records[step.name] = record["sha256"], record
    return records


def run_unit(res: Resources, unit: Unit, force: frozenset[str], tick: Tick) -> list[str]:
    """Bring every step of `unit` up to date; returns the names of the steps that ran."""
    ctx, ran = res.ctx, []
    hashes = {"records": unit.records_hash()}
    for step in STEPS:
        expected = _expected(ctx, step, unit, hashes)
        record = None if step.name in force else _fresh_record(ctx, step, unit, expected)
        if record is None:
            started = time.perf_counter()
            output = ctx.out / step.output(unit)
            inputs = {name: ctx.out / STEP_BY_NAME[name].output(unit) for name in step.inputs if name != "records"}
            result = step.run(res, unit, inputs, output, tick)
            record = {
                "step": step.name,
                "unit": unit.name,
                "fingerprint": expected,
                "output": str(step.output(unit)),
                "bytes": output.stat().st_size,
                "sha256": file_sha256(output),
                "ok": result.ok,
                "failures": result.failures,
                "seconds": round(time.perf_counter() - started, 3),
                "produced_by": f"s2ikit {__version__}",
            }
            write_json(record_path(ctx.out, step.name, unit), record)
            ran.append(step.name)
        else:
            tick(step.name, len(unit.records))
        hashes[step.name] = record["sha256"]
    return ran


# --- worker processes -------------------------------------------------------------------------------------
_WORKER: dict[str, Any] = {}


def _init_worker(ctx: PrepareContext, progress_queue: Any, parent: int) -> None:
    die_with_parent(parent)
    # a cluster signals every process of the job: the parent decides what stops, and kills its workers itself
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    _WORKER["res"] = Resources(ctx)
    _WORKER["queue"] = progress_queue


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent: int) -> None:
    """End this worker when the `prepare` process that started it dies, even by SIGKILL: otherwise it lives on,
    reparented to init, finishing units nobody waits for and then holding its memory for ever.

    Linux: the kernel sends SIGKILL on the parent's death (prctl PR_SET_PDEATHSIG); the parent may have died
    before that call, hence the pid check. Elsewhere a daemon thread polls the parent pid."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0:
                if os.getppid() != parent:
                    os._exit(1)
                return
        except (OSError, AttributeError):
            pass  # no usable libc: fall back to polling
    threading.Thread(target=_exit_when_orphaned, args=(parent,), daemon=True, name="parent-watch").start()


def _exit_when_orphaned(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def _run_in_worker(unit: Unit, force: frozenset[str]) -> list[str]:
    q = _WORKER["queue"]
    return run_unit(_WORKER["res"], unit, force, lambda step, n: q.put((step, n)))


def run_units(
    ctx: PrepareContext, units: list[Unit], workers: int, force: frozenset[str], tick: Callable[[str, int], None]
) -> dict[str, int]:
    """Run `units` in this process (workers <= 1) or a process pool; returns how often each step ran."""
    counts = {step.name: 0 for step in STEPS}
    if workers <= 1:
        res = Resources(ctx)
        for unit in units:
            for name in run_unit(res, unit, force, tick):
                counts[name] += 1
        return counts
    # spawn, not fork: worker processes must not inherit ONNX Runtime or BLAS thread pools. One BLAS/OpenMP
    # thread per worker: the workers are the parallelism, and oversubscribed cores slowed features 10x.
    mp = multiprocessing.get_context("spawn")
    progress_queue = mp.Queue()
    with (
        _single_threaded_children(),
        ProcessPoolExecutor(
            workers, mp_context=mp, initializer=_init_worker, initargs=(ctx, progress_queue, os.getpid())
        ) as pool,
    ):
        pending: set[Future] = {pool.submit(_run_in_worker, unit, force) for unit in units}
        try:
            while pending:
                done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                _drain(progress_queue, tick)
                for future in done:
                    for name in future.result():  # re-raises a worker's unexpected error here
                        counts[name] += 1
        except BaseException as e:
            if isinstance(e, StopRequested):
                # a cluster's stop: end the running units now (each writes its outputs atomically, so nothing is
                # torn; a rerun redoes them) rather than overrun the grace period before SIGKILL
                for child in multiprocessing.active_children():
                    child.kill()  # SIGKILL: the workers ignore the stop signals (below)
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        _drain(progress_queue, tick)
    return counts


@contextmanager
def _single_threaded_children() -> Iterator[None]:
    names = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update({name: "1" for name in names})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _drain(progress_queue: Any, tick: Callable[[str, int], None]) -> None:
    while True:
        try:
            step, n = progress_queue.get_nowait()
        except queue_mod.Empty:
            return
        tick(step, n)
