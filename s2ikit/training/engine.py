"""The one training loop: the encoder and the GAN supply a `Task`; the engine does everything around its steps.

The engine owns resume (the training-state checkpoint, with a check of the config it was saved with), stopping
(steps, epochs, and an opt-in time budget that says loudly when it ends a run), rank flags, the cadence of logs,
snapshots and checkpoints, EMA hooks (`Task.after_step`) and loss statistics, which stay on the device between
log intervals and are read with one host sync per interval. A task owns its networks, its loss and its phases.
The engine calls the task's hooks by name (`before_first_step`, `begin_epoch`, `batches`, `train_step`,
`after_step`, `end_epoch`, ...) and keeps its own bookkeeping (step, epoch timing); a task returns what it
produces and never writes into what the engine reads.

Every step is a function of (seed, step): a task's batches for an epoch are a pure function of the epoch, so a
resumed run skips the batches its interrupted epoch already consumed and then replays what an uninterrupted run
would have done. `metrics.jsonl` is truncated to the resumed step, so a replay never duplicates a line.
A resume on another data folder than the run recorded is refused unless asked for (`allow_new_data`).
A resume on another world size keeps the global batch (training/scale.py) and says so in one line.
Run folder: config.json (the current settings, with `scale`: world size, per-process batch, accumulation),
run.json (what ran it, from the latest start: s2ikit and torch versions, the command line, world size and
devices), metrics.jsonl, resumes.jsonl (each resume's step, changed settings, and, when they changed, the scale
and the data folder), status.json (how the run ended, with its exit code), checkpoints/.
"""

from __future__ import annotations

import json
import math
import os
import platform
import socket
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from s2ikit import __version__
from s2ikit.core import checkpoints
from s2ikit.training.distributed import DistInfo, any_rank, barrier, broadcast_flag, device_names
from s2ikit.training.monitor import RunMonitor
from s2ikit.training.scale import describe_change
from s2ikit.utils.atomic import read_json, remove_stale_temps, write_bytes, write_json
from s2ikit.utils.errors import UserError
from s2ikit.utils.exit_codes import DIVERGED, DONE, PREEMPTED, TIME_BUDGET
from s2ikit.utils.jsonl import append_jsonl
from s2ikit.utils.stop_signals import StopSignals

METRICS, CONFIG, RESUMES, RUN_RECORD = "metrics.jsonl", "config.json", "resumes.jsonl", "run.json"
STATUS = checkpoints.RUN_STATUS
EXIT_CODES = {"schedule": DONE, "time_budget": TIME_BUDGET, "preempted": PREEMPTED}  # status.json's exit_code


class Diverged(UserError):
    """A loss went non-finite or past the threshold; the last good checkpoint is kept."""

    exit_code = DIVERGED


class Preempted(UserError):
    """SIGTERM or SIGUSR1 stopped the run at a step boundary, its state saved: the same command goes on."""

    exit_code = PREEMPTED


@dataclass(frozen=True)
class Schedule:
    """When things happen, in steps (an epoch is `steps_per_epoch` batches of the task's loader)."""

    steps_per_epoch: int
    total_steps: int
    log_every: int  # steps between metrics.jsonl lines (statistics are the mean over the interval)
    checkpoint_every: int  # steps between training-state checkpoints
    snapshot_every: int = 0  # steps between snapshots (sample grids); 0 = none
    time_budget_minutes: float = 0.0  # 0 = no limit; a guard, not a preset's length
    # False: the task can only resume at an epoch's start, so the time budget is checked at epoch ends only
    resumable_mid_epoch: bool = True
    divergence_threshold: float = math.inf  # a statistic above this (or not finite) stops the run


class Task:
    """What a training run supplies. `state`/`load_state` hold everything a resume needs besides the step."""

    kind: str  # the training-state checkpoint kind: "encoder-state" or "gan-state"
    state_file: Path  # relative to the run folder
    model_settings: tuple[str, ...] = ()  # config keys that shape the networks (a resume may not change them)

    def before_first_step(self, step: int) -> None:
        """Once, after any resume, when there are steps to train from `step` (the GAN's sample captions)."""

    def begin_epoch(self, epoch: int) -> None:
        """Before the epoch's batches are drawn (the encoder's train mode after a validation)."""

    def batches(self, epoch: int) -> Iterable[Any]:
        """The epoch's step inputs, a function of the epoch alone; each is handed to `train_step` as it is."""
        raise NotImplementedError

    def train_step(self, batch: Any, step: int) -> dict[str, torch.Tensor] | None:
        """Every phase of one step; returns its statistics as (device) scalars, or None for a step the optimisers
        skipped (fp16's gradient scaler after an overflow), which the logged means and divergence check leave out."""
        raise NotImplementedError

    def after_step(self, step: int) -> None:
        """After the optimisers of step `step` (0-based): the GAN's EMA update."""

    def end_epoch(self, epoch: int, last: bool, seconds: float) -> dict[str, Any]:
        """After the epoch's last step (`seconds` since its `begin_epoch`); returns fields for its log record
        (the encoder's validation)."""
        return {}

    def record(self, step: int, epoch: int, means: dict[str, float], extra: dict[str, Any]) -> dict[str, Any]:
        return {"step": step, "epoch": epoch + 1, **means, **extra}

    def format(self, record: dict[str, Any]) -> str:
        return " | ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in record.items())

    def snapshot(self, step: int, grid: bool) -> None:
        """Main rank, at snapshot and checkpoint steps, before the checkpoint is written."""

    def on_checkpoint(self, step: int, stopped: dict[str, Any] | None) -> None:
        """Main rank, just before the training state of `step` is saved (the GAN's generator files)."""

    def state(self) -> dict[str, Any]:
        raise NotImplementedError

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore `state`; settings of the current config that the state also holds (the optimisers' learning
        rates) are the current config's afterwards, or the task refuses them with a UserError."""
        raise NotImplementedError

    def resume_step(self, state: dict[str, Any], steps_per_epoch: int) -> int:
        """The step a saved training state continues from."""
        return int(state["step"])


class RunningStats:
    """Sums of each statistic since the last read, on the device, in float64 (as Python floats would add)."""

    def __init__(self, threshold: float):
        self.threshold = threshold
        self.sums: dict[str, torch.Tensor] = {}
        self.bad: torch.Tensor | None = None
        self.count = 0

    def add(self, stats: dict[str, torch.Tensor]) -> None:
        for key, value in stats.items():
            value = value.detach().double()
            self.sums[key] = self.sums[key] + value if key in self.sums else value
        values = torch.stack([v.detach().float() for v in stats.values()]) if stats else torch.zeros(1)
        bad = ~(torch.isfinite(values) & (values.abs() < self.threshold)).all()
        self.bad = bad if self.bad is None else self.bad | bad
        self.count += 1

    def diverged(self) -> bool:
        """Whether any step since the last read diverged (one host sync; the sums are kept)."""
        return bool(self.bad) if self.bad is not None else False

    def read(self) -> tuple[dict[str, float], bool]:
        """Means since the last read and whether any step diverged: one host sync."""
        if not self.count:
            return {}, False
        keys = list(self.sums)
        packed = torch.stack([self.sums[k] for k in keys] + [self.bad.double()]).tolist()
        means = {k: v / self.count for k, v in zip(keys, packed)}
        self.sums, self.bad, self.count = {}, None, 0
        return means, bool(packed[-1])


def settings_changes(saved: dict[str, Any], current: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    return {k: (saved.get(k), v) for k, v in current.items() if k in saved and saved[k] != v}


def check_resume(
    path: Path,
    saved: dict[str, Any] | None,
    current: dict[str, Any],
    section: str,
    model_settings: tuple[str, ...],
    log: Callable[[str], None],
) -> dict[str, tuple[Any, Any]]:
    """Refuse a resume that would change the networks' shape; list every other change."""
    if saved is None:
        log(f"{path}: saved without its config (older s2ikit); settings not compared")
        return {}
    changes = settings_changes(saved, current)
    for key in model_settings:
        if key in changes:
            was, now = changes[key]
            raise UserError(
                f"{path}: this run was trained with {section}.{key}={was}, now {now}; it shapes the networks, so the "
                "run cannot resume with it (use another --run, or --restart to start this one again)"
            )
    if changes:
        shown = ", ".join(f"{section}.{k} {was} -> {now}" for k, (was, now) in changes.items())
        log(f"resuming with changed settings: {shown}")
    return changes


def same_folder(a: str, b: str) -> bool:
    if a == b:
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them is gone, or a relative path recorded from another folder
        return Path(a).resolve() == Path(b).resolve()


def check_data(
    run_dir: Path, saved: dict[str, Any] | None, current: dict[str, Any], allow_new: bool
) -> list[str] | None:
    """Refuse a resume on another data folder than the run's, unless `allow_new`; returns [was, now] if it changed."""
    was, now = (saved or {}).get("data"), current.get("data")
    if was is None or now is None or same_folder(was, now):
        return None
    if not allow_new:
        raise UserError(
            f"{run_dir}: this run was trained on --data {was}, now --data {now}; resume on {was}, or "
            "pass --allow-new-data to go on with the new one (or --restart)"
        )
    return [was, now]


def _scale_change(saved: dict[str, Any] | None, current: dict[str, Any]) -> tuple[dict, dict] | None:
    """(was, now) when the state was saved at another world size or batch split; None otherwise (or unknown)."""
    was, now = (saved or {}).get("scale"), current.get("scale")
    if not was or not now or was == now:
        return None
    return was, now


def exit_code(run_dir: Path) -> int:
    """The exit status of the run's last training (status.json's `exit_code`; 0 when it has none)."""
    path = Path(run_dir) / STATUS
    return int(read_json(path).get("exit_code", DONE)) if path.is_file() else DONE


def _program() -> str:
    name = Path(sys.argv[0]).name
    return "s2ikit" if name in ("__main__.py", "s2ikit") else name  # `python -m s2ikit` or the script


def run_record(info: DistInfo, devices: list[str]) -> dict[str, Any]:
    """What ran the latest start of a run: versions, command line, world size and each rank's device."""
    return {
        "s2ikit": __version__,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "command": [_program(), *sys.argv[1:]],
        "host": socket.gethostname(),
        "world_size": info.world_size,
        "devices": devices,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _truncate_metrics(path: Path, step: int, steps_per_epoch: int) -> None:
    """Drop the lines after `step`: the resumed run writes them again."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line torn by a kill
        at = record.get("step", record.get("epoch", 0) * steps_per_epoch)
        if at <= step:
            kept.append(line + "\n")
    write_bytes(path, "".join(kept).encode())


class Engine:
    def __init__(self, run_dir: Path, info: DistInfo, schedule: Schedule, config: dict[str, Any], section: str,
                 log: Callable[[str], None] = print):  # fmt: skip
        self.run_dir, self.info, self.schedule, self.log = run_dir, info, schedule, log
        self.config, self.section = config, section  # `section`: the preset section the config is ([gan], ...)
        self.monitor = RunMonitor(run_dir, section, enabled=info.is_main)  # progress bar, TensorBoard events

    def resume(self, task: Task, enabled: bool, allow_new_data: bool = False) -> int:
        """Load the task's training state if there is one; returns the step to continue from. A state saved on
        another data folder is refused unless `allow_new_data` (then the change is recorded in resumes.jsonl)."""
        path = self.run_dir / task.state_file
        if self.info.is_main:
            if self.run_dir.is_dir():
                remove_stale_temps(self.run_dir)  # those of killed saves; a live process's are kept
        step = 0
        if enabled and path.is_file():
            state = checkpoints.load(path, task.kind)
            saved = state.get("config")
            new_data = check_data(self.run_dir, saved, self.config, allow_new_data)
            changes = check_resume(path, saved.get(self.section) if saved else None, self.config[self.section],
                                   self.section, task.model_settings, self.log)  # fmt: skip
            scale = _scale_change(saved, self.config)
            task.load_state(state)
            step = task.resume_step(state, self.schedule.steps_per_epoch)
            if self.info.is_main and step < self.schedule.total_steps:
                epochs, into = divmod(step, self.schedule.steps_per_epoch)
                where = f"after epoch {epochs}" if not into else f"{into} steps into epoch {epochs + 1}"
                self.log(f"resuming from {path} at step {step} of {self.schedule.total_steps} ({where})")
                if new_data:
                    self.log(f"resuming on a new data folder: {new_data[0]} -> {new_data[1]}")
                if scale:
                    self.log(describe_change(self.section, *scale))
                record = {"step": step, "changed": changes, **({"data": new_data} if new_data else {}),
                          **({"scale": list(scale)} if scale else {})}  # fmt: skip
                append_jsonl(self.run_dir / RESUMES, record)
        if self.info.is_main and step < self.schedule.total_steps:
            # the lines logged after the state (all of them when a run was killed before its first checkpoint)
            # are written again
            _truncate_metrics(self.run_dir / METRICS, step, self.schedule.steps_per_epoch)
        devices = device_names(self.info)  # a collective: every rank, before the main rank writes
        if self.info.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            write_json(self.run_dir / CONFIG, self.config, only_if_changed=True)
            write_json(self.run_dir / RUN_RECORD, run_record(self.info, devices))
        return step

    def run(self, task: Task, start_step: int) -> dict[str, Any]:
        """Train from `start_step` to the end of the schedule (or the time budget); returns the run's status."""
        if start_step < self.schedule.total_steps:
            task.before_first_step(start_step)
            self.monitor.start(start_step, self.schedule.total_steps)
        try:
            # SIGTERM / SIGUSR1 from here on are acted on at the next step boundary (before: run_lock's exit)
            with StopSignals() as self.signals:
                return self._train(task, start_step)
        finally:
            self.monitor.close()

    def _train(self, task: Task, start_step: int) -> dict[str, Any]:
        s, info = self.schedule, self.info
        if start_step >= s.total_steps:
            status = read_json(self.run_dir / STATUS) if (self.run_dir / STATUS).is_file() else {"reason": "schedule"}
            self.log(f"{self.run_dir}: already complete at step {start_step} of {s.total_steps}; nothing to do")
            return {**status, "step": start_step, "total_steps": s.total_steps, "already_complete": True}
        stats = RunningStats(s.divergence_threshold)
        step, started, last_good = start_step, time.monotonic(), start_step
        stopped: dict[str, Any] | None = None
        while stopped is None:
            epoch, skip = divmod(step, s.steps_per_epoch)
            epoch_started = time.monotonic()
            task.begin_epoch(epoch)
            for i, batch in enumerate(task.batches(epoch)):
                if i < skip:
                    continue  # replaying the interrupted epoch's order up to where it stopped
                if i >= s.steps_per_epoch or step >= s.total_steps:
                    break
                step_stats = task.train_step(batch, step)
                if step_stats is not None:
                    stats.add(step_stats)
                task.after_step(step)
                step += 1
                self.monitor.advance(step)
                epoch_end = step % s.steps_per_epoch == 0
                out_of_time = False
                if s.time_budget_minutes and (s.resumable_mid_epoch or epoch_end):
                    # rank 0's clock decides; the broadcast is a host sync, so only on steps that check the clock
                    out_of_time = broadcast_flag(time.monotonic() - started > 60 * s.time_budget_minutes, info)
                # every step: a signal may reach the ranks at different steps, so they agree on one (a host sync
                # per step under torchrun; none on one process)
                signalled = any_rank(self.signals.received is not None, info)
                if step >= s.total_steps:
                    stopped = {"reason": "schedule", "step": step, "total_steps": s.total_steps}
                elif out_of_time:
                    stopped = {"reason": "time_budget", "step": step, "total_steps": s.total_steps,
                               "time_budget_minutes": s.time_budget_minutes}  # fmt: skip
                elif signalled:
                    name = self.signals.received or "a signal"  # another rank's
                    if not (s.resumable_mid_epoch or epoch_end):
                        # this task resumes only at an epoch's start: stop now, the epoch is trained again
                        stopped = {"reason": "preempted", "signal": name, "step": last_good,
                                   "total_steps": s.total_steps}  # fmt: skip
                        break
                    stopped = {"reason": "preempted", "signal": name, "step": step, "total_steps": s.total_steps}
                if epoch_end or stopped:
                    extra = task.end_epoch(epoch, stopped is not None, time.monotonic() - epoch_started)
                else:
                    extra = {}
                log_due = step % s.log_every == 0 or stopped is not None
                checkpoint_due = step % s.checkpoint_every == 0 or stopped is not None
                if log_due or checkpoint_due:
                    means, bad = stats.read() if log_due else ({}, stats.diverged())
                    if broadcast_flag(bad, info):
                        raise Diverged(
                            f"training diverged between steps {last_good} and {step} (a loss is not finite or "
                            f"above {s.divergence_threshold:g}); the last good checkpoint is "
                            f"{self.run_dir / task.state_file}. Lower the learning rates or raise the gradient "
                            "penalty, then resume."
                        )
                    if log_due and info.is_main:
                        record = task.record(step, epoch, means, extra)
                        record["seconds"] = round(time.monotonic() - started, 1)
                        append_jsonl(self.run_dir / METRICS, record)
                        self.monitor.record(record)
                        self.log(task.format(record))
                snapshot_due = bool(s.snapshot_every) and step % s.snapshot_every == 0 or stopped is not None
                if info.is_main and (snapshot_due or checkpoint_due):
                    task.snapshot(step, grid=snapshot_due)
                    if snapshot_due:
                        self.monitor.snapshot(step)
                if checkpoint_due:
                    if info.is_main:
                        # the task's files first: the training state is the commit point, so a kill between the
                        # two resumes from the previous state and writes the task's files again
                        task.on_checkpoint(step, stopped)
                        checkpoints.save(task.kind, {**task.state(), "step": step},
                                         self.run_dir / task.state_file, self.config)  # fmt: skip
                    last_good = step
                    barrier(info)  # the other ranks wait for the save here, not on every step (a host sync)
                if stopped:
                    break
        if info.is_main:
            write_json(self.run_dir / STATUS, {**stopped, "exit_code": EXIT_CODES[stopped["reason"]]})
            if stopped["reason"] == "time_budget":
                epoch = (step - 1) // s.steps_per_epoch + 1
                append_jsonl(self.run_dir / METRICS, {"epoch": epoch, "event": "stopped", **stopped})
                self.log(
                    f"WARNING: the time budget of {s.time_budget_minutes} min stopped this run at step {step} of "
                    f"{s.total_steps}; its results depend on the machine's speed. Rerun the same command to go on."
                )
        if stopped["reason"] == "preempted":
            raise Preempted(
                f"stopped by {stopped['signal']} at step {stopped['step']} of {s.total_steps}, the training state "
                f"saved in {self.run_dir / task.state_file}; rerun the same command to go on (exit {PREEMPTED})"
            )
        return stopped
