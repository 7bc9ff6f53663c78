"""Progress bars with rate and ETA (rich) for training steps and generation passes; silent off a terminal.

A bar is drawn only when its console is a terminal, so logs, CI and `nohup` output stay plain text. While a bar
is live, rich routes the process's stdout and stderr above it, so the log lines printed meanwhile stay readable.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

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
        shown = f"{speed:.2f} {self.unit}/s" if speed >= 1 else f"{1 / speed:.2f} s/{self.unit[:-1] or self.unit}"
        return Text(shown, style="progress.data.speed")


def progress_bar(unit: str = "steps", console: Console | None = None) -> Progress:
    """A rich Progress: description, bar, done/total, rate, ETA, elapsed; disabled when not on a terminal."""
    console = console or Console(stderr=True)
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
        disable=not console.is_terminal,
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
