"""What a person watches while the engine trains: a progress bar (steps/s, ETA) and TensorBoard events.

The bar is drawn on the main rank when stderr is a terminal; elsewhere (Slurm, nohup, a log file) plain lines
with the step, rate and ETA are printed every 10% and at least every S2IKIT_PROGRESS_SECONDS (utils/progress.py).
With `tensorboard` installed, RUN/tensorboard/ gets every numeric field of each metrics.jsonl record (tag
`SECTION/KEY`, e.g. `gan/d_loss`) and each sample grid (`SECTION/samples`, from RUN/samples/step-NNNNNNN.png), at
the step they belong to.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from s2ikit.utils.progress import progress_bar
from s2ikit.utils.tensorboard_log import EVENTS_DIR, TensorBoardLog

SAMPLES_DIR = "samples"  # the tasks' sample grids: samples/step-NNNNNNN.png
NOT_CURVES = ("step", "epoch", "seconds")  # record fields that are positions, not measurements


class RunMonitor:
    def __init__(self, run_dir: Path, section: str, enabled: bool = True, console: Console | None = None):
        self.run_dir, self.section, self.enabled, self.console = Path(run_dir), section, enabled, console
        self.bar = self.task = self.events = None

    def start(self, step: int, total_steps: int) -> None:
        if not self.enabled:
            return
        self.bar = progress_bar("steps", self.console)
        self.bar.start()
        self.task = self.bar.add_task(f"train {self.section}", total=total_steps, completed=step)
        # the records after `step` are written again (metrics.jsonl keeps those up to `step`): hide the old ones
        self.events = TensorBoardLog(self.run_dir / EVENTS_DIR, purge_step=step + 1)

    def advance(self, step: int) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=step)

    def record(self, record: dict[str, Any]) -> None:
        """A metrics.jsonl record, as scalars at its step."""
        if self.events is not None and "step" in record:
            values = {k: v for k, v in record.items() if k not in NOT_CURVES}
            self.events.scalars(values, int(record["step"]), prefix=f"{self.section}/")

    def snapshot(self, step: int) -> None:
        if self.events is not None:
            self.events.image(f"{self.section}/samples", self.run_dir / SAMPLES_DIR / f"step-{step:07d}.png", step)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
        if self.events is not None:
            self.events.close()
            self.events = None
