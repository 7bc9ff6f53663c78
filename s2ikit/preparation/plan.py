"""Units of work: each unit is one output shard (a run of up to `shard_size` records of one split).

Units are the granularity of resume, parallelism and partitioning. The plan is a pure function of the index
and the shard size, so every partition of a cluster job computes the same plan independently.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from s2ikit.data.records import Record
from s2ikit.utils.atomic import fingerprint
from s2ikit.utils.errors import UserError


@dataclass(frozen=True)
class Unit:
    split: str
    shard: int  # index of the shard within its split
    records: tuple[Record, ...]

    @property
    def name(self) -> str:
        return f"{self.split}-{self.shard:06d}"

    @property
    def shard_path(self) -> Path:
        """Relative to the output folder."""
        return Path("shards") / self.split / f"shard-{self.shard:06d}.tar"

    def records_hash(self) -> str:
        return fingerprint([r.to_json() for r in self.records])


def plan_units(records: list[Record], shard_size: int) -> list[Unit]:
    """Group records by split (in index order) and cut each split into shards of `shard_size`."""
    if shard_size < 1:
        raise UserError("prepare.shard_size must be at least 1")
    by_split: dict[str, list[Record]] = {}
    for record in records:
        by_split.setdefault(record.split, []).append(record)
    units = []
    for split in sorted(by_split):
        rows = by_split[split]
        for shard, start in enumerate(range(0, len(rows), shard_size)):
            units.append(Unit(split, shard, tuple(rows[start : start + shard_size])))
    return units


def partition(units: list[Unit], num_partitions: int, index: int) -> list[Unit]:
    """Deterministic slice `index` of `num_partitions`: every num_partitions-th unit, so slices are balanced."""
    if num_partitions < 1 or not 0 <= index < num_partitions:
        raise UserError(f"--partition {index} must be in [0, --num-partitions {num_partitions})")
    return units[index::num_partitions]
