"""How a training's global batch is spread over processes and micro-batches, the same on any number of GPUs.

`batch_size` is the global batch: images per optimiser step, summed over all processes. `batch_per_process` is
the micro-batch: images one process puts through the networks at once (0 = batch_size / world size). Each
process runs `accumulation` = batch_size / (world size x batch_per_process) micro-batches per step and sums
their gradients; the step's gradient is the mean over the global batch. batch_size must be a multiple of
world size x batch_per_process; anything else is refused in one line naming both settings.

The global batch is cut into `slots` = batch_size / batch_per_process micro-batches. Slot s is run by process
s // accumulation as its (s % accumulation)-th micro-batch, and has its own data stream and random draws, seeded
by the slot, not by the process. So two runs with the same batch_size and batch_per_process take the same
steps on 1 process (accumulating) or on several (one slot each); only the order of floating-point sums differs,
and for two slots not even that. With one slot (1 process, defaults) every seed is the one a run without
accumulation has always used. One exception: the speech encoder's matching loss compares the pairs of every
process's micro-batch (their negatives are gathered), but not those of micro-batches one process accumulates, so
for the encoder several processes match 1 process at world size x batch_per_process, not 1 process accumulating.

A resume on another world size keeps the global batch and the step count (an epoch is the same number of
steps); the micro-batch is derived again and the change is logged and recorded in resumes.jsonl.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from s2ikit.utils.errors import UserError


@dataclass(frozen=True)
class BatchPlan:
    global_batch: int  # images per optimiser step, all processes together
    per_process: int  # images per forward pass (micro-batch)
    accumulation: int  # micro-batches per process per step
    world_size: int
    rank: int

    @property
    def slots(self) -> int:
        return self.world_size * self.accumulation

    @property
    def my_slots(self) -> range:
        """This process's slots, in the order it runs them."""
        return range(self.rank * self.accumulation, (self.rank + 1) * self.accumulation)

    def rows(self, slot: int) -> slice:
        """The rows of the global batch's per-step draws (z) that belong to `slot`."""
        return slice(slot * self.per_process, (slot + 1) * self.per_process)

    def record(self) -> dict[str, int]:
        """What the run folder records (config.json's `scale`) and a resume compares."""
        return {"world_size": self.world_size, "batch_size": self.global_batch,
                "batch_per_process": self.per_process, "accumulation": self.accumulation}  # fmt: skip


def plan_batches(section: str, batch_size: int, batch_per_process: int, world_size: int, rank: int) -> BatchPlan:
    """The plan for `world_size` processes, or a one-line UserError naming the settings that do not divide."""
    processes = f"{world_size} process{'es' if world_size > 1 else ''}"
    if batch_per_process == 0:
        if batch_size % world_size:
            raise UserError(
                f"{section}.batch_size={batch_size} (images per step over all processes) does not split over "
                f"{processes}: set it to a multiple of {world_size}, or set {section}.batch_per_process"
            )
        batch_per_process = batch_size // world_size
    if batch_size % (world_size * batch_per_process):
        step = world_size * batch_per_process
        raise UserError(
            f"{section}.batch_size={batch_size} (images per step over all processes) is not a multiple of "
            f"{processes} x {section}.batch_per_process={batch_per_process}; make it one (e.g. "
            f"{section}.batch_size={step * max(1, round(batch_size / step))})"
        )
    accumulation = batch_size // (world_size * batch_per_process)
    return BatchPlan(batch_size, batch_per_process, accumulation, world_size, rank)


def describe_change(section: str, was: dict[str, Any], now: dict[str, Any]) -> str:
    """The one line a resume on another world size logs."""
    n = now["world_size"]
    return (
        f"resuming on {n} process{'es' if n > 1 else ''} (was {was.get('world_size', '?')}): the global batch stays "
        f"{section}.batch_size={now['batch_size']}; per process {was.get('batch_per_process', '?')} -> "
        f"{now['batch_per_process']}, accumulation {was.get('accumulation', '?')} -> {now['accumulation']}. The "
        "steps from here are not bit for bit those the old world size would have taken"
    )
