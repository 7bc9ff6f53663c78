"""Progress with rate and ETA for training steps, generation passes and `prepare`: rich bars on a terminal,
plain lines elsewhere.

On a terminal a bar is drawn; while it is live, rich routes the process's stdout and stderr above it, so the log
lines printed meanwhile stay readable. Off a terminal (Slurm, `nohup`, `make reproduce > log 2>&1`, CI) a bar would
draw nothing until the end, so `PlainProgress` prints one line per task instead, each time the task passes another
10% and at least every S2IKIT_PROGRESS_SECONDS seconds (default 60) while it moves, and once at the end:
`train gan: 1200/60000 steps (2%) | 3.41 steps/s | ETA 4:47:13 | elapsed 0:05:52`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

T = TypeVar("T")


class RateColumn(ProgressColumn):
    """`12.3 steps/s` (or `s/step` below one per second: a CUB GAN step on a small GPU)."""

    def __init__(self, unit: str):
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if not speed:
            return Text(f"- {self.unit}/s", style="progress.data.speed")
        return Text(rate_text(speed, self.unit), style="progress.data.speed")


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def singular(unit: str) -> str:
    """steps -> step, batches -> batch, samples -> sample (the units progress bars count)."""
    if unit.endswith(("ches", "shes", "sses", "xes")):
        return unit[:-2]
    return unit[:-1] if unit.endswith("s") and len(unit) > 1 else unit


def rate_text(per_second: float, unit: str) -> str:
    """`12.34 steps/s`, or `2.50 s/step` below one per second."""
    return f"{per_second:.2f} {unit}/s" if per_second >= 1 else f"{1 / per_second:.2f} s/{singular(unit)}"


@dataclass
class _PlainTask:
    description: str
    total: float | None
    completed: float
    start: float  # where this session started counting (a resumed run's step)
    started: float  # time.monotonic()
    last_line: float
    last_decile: int


class PlainProgress:
    """rich Progress's calls used here (`add_task`, `advance`, `update`, `start`/`stop`, `with`), printing plain
    lines with rate and ETA: each 10% of a task, at least every `every` seconds while it moves, and at the end."""

    def __init__(self, console: Console, unit: str, every: float | None = None):
        self.console, self.unit = console, unit
        self.every = every if every is not None else float(os.environ.get("S2IKIT_PROGRESS_SECONDS", "60"))
        self.tasks: list[_PlainTask] = []

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def start(self) -> None:
        pass

    def stop(self) -> None:
        for task in self.tasks:
            if task.total and task.completed >= task.total and task.last_decile < 10:
                self._line(task, time.monotonic())
        self.tasks = []

    def add_task(self, description: str, total: float | None = None, completed: float = 0, **_: Any) -> int:
        now = time.monotonic()
        decile = int(10 * completed / total) if total else 0
        self.tasks.append(_PlainTask(description, total, completed, completed, now, now, decile))
        return len(self.tasks) - 1

    def advance(self, task_id: int, advance: float = 1) -> None:
        self.update(task_id, completed=self.tasks[task_id].completed + advance)

    def update(self, task_id: int, completed: float | None = None, **_: Any) -> None:
        task = self.tasks[task_id]
        if completed is None or completed == task.completed:
            return
        task.completed = completed
        now = time.monotonic()
        decile = int(10 * completed / task.total) if task.total else task.last_decile
        if decile > task.last_decile or now - task.last_line >= self.every:
            self._line(task, now)

    def _line(self, task: _PlainTask, now: float) -> None:
        elapsed = now - task.started
        done = task.completed - task.start
        parts = [f"{task.description}: {task.completed:g}"]
        if task.total:
            parts[0] += f"/{task.total:g} {self.unit} ({100 * task.completed / task.total:.0f}%)"
            task.last_decile = int(10 * task.completed / task.total)
        else:
            parts[0] += f" {self.unit}"
        if done > 0 and elapsed > 0:
            rate = done / elapsed
            parts.append(rate_text(rate, self.unit))
            if task.total:
                parts.append(f"ETA {_clock(max(0.0, task.total - task.completed) / rate)}")
        parts.append(f"elapsed {_clock(elapsed)}")
        task.last_line = now
        self.console.print(" | ".join(parts), markup=False, highlight=False, soft_wrap=True)


def progress_bar(unit: str = "steps", console: Console | None = None, columns: tuple | None = None) -> Any:
    """On a terminal, a rich Progress (description, bar, done/total, rate, ETA, elapsed, or `columns`); off a
    terminal, a PlainProgress printing lines with the same figures."""
    console = console or Console(stderr=True)
    if not console.is_terminal:
        return PlainProgress(console, unit)
    if columns is not None:
        return Progress(*columns, console=console)
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        RateColumn(unit),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TextColumn("elapsed"),
        TimeElapsedColumn(),
        console=console,
    )


def track(
    items: Iterable[T], total: int | None, description: str, unit: str = "batches", console: Console | None = None
) -> Iterator[T]:
    """Iterate `items` under a progress bar (which is gone again when the loop ends or raises)."""
    with progress_bar(unit, console) as bar:
        task = bar.add_task(description, total=total)
        for item in items:
            yield item
            bar.advance(task)
