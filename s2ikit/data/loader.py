"""Streams prepared shards as padded batches, in open_clip's stage order.

train: resampled shard list (seeded per rank and worker) -> tar to samples (`shards.read_shard`: unusable
       members skipped with a warning) -> key selection -> shuffle -> decode (a bad sample is warned about and
       skipped) -> one random caption per image -> batches; `with_epoch` gives every rank and worker the same
       number of batches, so DDP ranks never wait on each other at the epoch's end.
test:  shard list in order -> split_by_node -> split_by_worker -> tar to samples -> key selection -> decode ->
       every caption once -> batches (last one partial).

Shards are read where `shards/<split>/sizes.json` is, or from the URLs `shards/<split>/url-template.txt` names
(`shards.shard_locations`: `pipe:`, `file:`, `s3://`, ...), streamed by the same reader. Shards that yield no
usable sample at all are a one-line UserError naming the split's folder (`PassGuard`).

A batch is a dict: image (B, 3, H, W) in [-1, 1], mel (B, T_max, n_mels) zero-padded, mel_lengths (B,),
class_id (B,), caption_index (B,), key (list), text (list), attributes (list of the records' attribute dicts),
voice (list: who spoke each caption, ENGINE:VOICE, in a data set spoken by several TTS voices; "" otherwise).
"""

from __future__ import annotations

import math
import random
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import webdataset as wds

from s2ikit.config import LoaderConfig
from s2ikit.data.shards import decode_members, read_shard, read_sizes, shard_locations, split_folder
from s2ikit.utils.errors import UserError


def shard_list(data_dir: str | Path, split: str) -> tuple[list[str], dict[str, int]]:
    """Shard locations of `split` with samples (from sizes.json; local paths, or URLs by url-template.txt) and the
    sizes themselves."""
    folder, sizes = split_folder(data_dir, split), read_sizes(data_dir, split)
    urls = shard_locations(data_dir, split, [name for name, n in sorted(sizes.items()) if n > 0])
    if not urls:
        raise UserError(f"{folder}: no samples in split '{split}'")
    return urls, sizes


def decode_sample(sample: dict[str, Any]) -> dict[str, Any]:
    """Raw tar members -> image tensor in [-1, 1], metadata and the per-caption log-mels (ValueError if unusable)."""
    decoded = decode_members(sample)
    decoded["image"] = torch.from_numpy(decoded["image"].copy()).permute(2, 0, 1).float().div_(127.5).sub_(1.0)
    return decoded


_SHOWN_FAILURES = 5  # per DataLoader worker: a few name the problem, hundreds would bury it


class PassGuard:
    """Stages that count what one pass over the shards yields, so that shards with no usable sample fail in one
    line instead of being resampled for ever (train) or yielding an empty epoch (test).

    Each DataLoader worker runs its own copy. Train mode resamples without end: once every shard has been opened,
    no sample read, none selected, or as many decoding failures as samples selected without one success is a
    UserError. Test mode ends: at the end, samples read but none decoded is a UserError. Occasional bad samples
    are warned about and skipped.
    """

    def __init__(self, folder: Path, split: str, urls: list[str], endless: bool):
        self.folder, self.split, self.urls, self.endless = folder, split, set(urls), endless
        self.opened: set[str] = set()
        self.read = self.selected = self.decoded = self.failed = 0
        self.selected_in_pass: int | None = None  # selected samples when every shard had been opened once
        self.first_error = ""

    def _fail(self, what: str) -> None:
        where = f"{self.folder}: split '{self.split}'"
        first = f"; first error: {self.first_error}" if self.first_error else ""
        raise UserError(
            f"{where}: {what} in a full pass over its {len(self.urls)} shards ({self.read} samples read, "
            f"{self.selected} selected, {self.failed} failed to decode{first}); prepare the data again"
        )

    def _check_pass(self) -> None:
        if self.read == 0:
            self._fail("no sample")
        if self.selected == 0:
            self._fail("no sample of the selected keys")

    def read_shards(self, src: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for item in src:
            url = item["url"]
            yield from self._count_read(read_shard(url))
            self.opened.add(url)
            if self.endless and self.opened >= self.urls:
                if self.selected_in_pass is None:
                    self.selected_in_pass = self.selected
                self._check_pass()
        if self.opened and self.read == 0:
            self._fail("no sample")

    def _count_read(self, samples: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for sample in samples:
            self.read += 1
            yield sample

    def select(self, keep: KeySelect | None) -> Any:
        def stage(src: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
            for sample in src:
                if keep is None or keep(sample):
                    self.selected += 1
                    yield sample

        return stage

    def decode(self, src: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for sample in src:
            try:
                decoded = decode_sample(sample)
            except ValueError as e:
                self.failed += 1
                self.first_error = self.first_error or str(e)
                if self.failed <= _SHOWN_FAILURES:
                    more = " (further decoding failures are not shown)" if self.failed == _SHOWN_FAILURES else ""
                    warnings.warn(f"{e}; sample skipped{more}", stacklevel=2)
                if self.decoded == 0 and self.selected_in_pass is not None and self.failed >= self.selected_in_pass:
                    self._fail("no sample decodes")
                continue
            self.decoded += 1
            yield decoded
        if self.decoded == 0 and self.failed:
            self._fail("no sample decodes")


def _item(sample: dict[str, Any], caption: dict[str, Any]) -> dict[str, Any]:
    return {
        "key": sample["key"],
        "image": sample["image"],
        "mel": torch.from_numpy(sample["mels"][caption["index"]].astype(np.float32)),
        "class_id": sample["meta"]["class_id"],
        "caption_index": caption["index"],
        "text": caption["text"],
        "attributes": sample["meta"].get("attributes", {}),
        "voice": caption.get("voice", ""),
    }


class RandomCaption:
    """One caption per image, chosen by an RNG seeded per rank (or stream) and DataLoader worker."""

    def __init__(self, seed: int, worker_seed=wds.utils.pytorch_worker_seed):
        self.seed, self.worker_seed = seed, worker_seed

    def __call__(self, source: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        rng = random.Random(wds.utils.make_seed(self.worker_seed(), self.seed))
        for sample in source:
            yield _item(sample, rng.choice(sample["meta"]["captions"]))


def every_caption(source: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for sample in source:
        for caption in sample["meta"]["captions"]:
            yield _item(sample, caption)


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    lengths = torch.tensor([item["mel"].shape[0] for item in items], dtype=torch.long)
    mel = torch.zeros(len(items), int(lengths.max()), items[0]["mel"].shape[1])
    for row, item in enumerate(items):
        mel[row, : item["mel"].shape[0]] = item["mel"]
    return {
        "image": torch.stack([item["image"] for item in items]),
        "mel": mel,
        "mel_lengths": lengths,
        "class_id": torch.tensor([item["class_id"] for item in items], dtype=torch.long),
        "caption_index": torch.tensor([item["caption_index"] for item in items], dtype=torch.long),
        "key": [item["key"] for item in items],
        "text": [item["text"] for item in items],
        "attributes": [item["attributes"] for item in items],
        "voice": [item["voice"] for item in items],
    }


def first_rows(keys: list[str], seen: set[str]) -> list[int]:
    """Rows of a batch whose image key is new (test mode yields one row per caption); adds them to `seen`."""
    rows = []
    for i, key in enumerate(keys):
        if key not in seen:
            seen.add(key)
            rows.append(i)
    return rows


class StreamSeed:
    """webdataset's per-worker seed (rank x 1000 + worker) with a stream's index in place of the rank."""

    def __init__(self, stream: int):
        self.stream = stream

    def __call__(self) -> int:
        _, _, worker, _ = wds.utils.pytorch_worker_info()
        return self.stream * 1000 + worker


def world_size() -> int:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size()
    return 1


class KeySelect:
    """Keep (or drop) samples whose key is in `keys`: how a validation part is carved from a split."""

    def __init__(self, keys: frozenset[str], keep: bool):
        self.keys, self.keep = keys, keep

    def __call__(self, sample: dict[str, Any]) -> bool:
        return (sample["__key__"] in self.keys) == self.keep


class ShardLoader(wds.WebLoader):
    """A WebLoader whose UserErrors stay one line: a DataLoader worker's error comes back wrapped in the
    worker's traceback text, from which the original line is taken again."""

    def __iter__(self) -> Iterator[dict[str, Any]]:
        try:
            yield from super().__iter__()
        except UserError as e:
            raise UserError(_original_line(str(e))) from None


def _original_line(message: str) -> str:
    found = re.findall(r"^(?:s2ikit\.utils\.errors\.)?UserError: (.*)$", message, flags=re.MULTILINE)
    return found[-1] if found and message.startswith("Caught UserError") else message


def make_loader(
    data_dir: str | Path,
    config: LoaderConfig,
    select: KeySelect | None = None,
    num_samples: int | None = None,
    stream: tuple[int, int] | None = None,
) -> wds.WebLoader:
    """A WebLoader over one split; `.num_batches` tells how many batches each rank sees per epoch (train).

    `select` filters samples by key; then `num_samples` (how many it keeps) sizes the training epoch.
    `stream` (train): (index, count) in place of (rank, world size) in the seeds and the epoch's length, so a
    micro-batch slot reads the same samples whichever process runs it (training/scale.py).
    """
    urls, sizes = shard_list(data_dir, config.split)
    guard = PassGuard(Path(data_dir) / "shards" / config.split, config.split, urls, endless=config.mode == "train")
    if config.mode == "train":
        workers = max(1, config.num_workers)
        n = num_samples if num_samples is not None else sum(sizes.values())
        streams = stream[1] if stream is not None else world_size()
        worker_seed = StreamSeed(stream[0]) if stream is not None else wds.utils.pytorch_worker_seed
        global_batches = math.ceil(n / (config.batch_size * streams))
        per_worker = math.ceil(global_batches / workers)
        stages = [
            wds.ResampledShards(urls, seed=config.seed, deterministic=True, worker_seed=worker_seed),
            guard.read_shards,
            guard.select(select),
            wds.shuffle(config.shuffle_buffer, initial=min(config.shuffle_buffer, 100), seed=config.seed),
            guard.decode,
            RandomCaption(config.seed, worker_seed),
            wds.batched(config.batch_size, collation_fn=collate, partial=False),
        ]
        dataset = wds.DataPipeline(*stages).with_epoch(per_worker)
        num_batches = per_worker * workers
    elif config.mode == "test":
        stages = [
            wds.SimpleShardList(urls),
            *([wds.split_by_node] if config.split_by_node else []),
            wds.split_by_worker,
            guard.read_shards,
            guard.select(select),
            guard.decode,
            every_caption,
            wds.batched(config.batch_size, collation_fn=collate, partial=True),
        ]
        dataset = wds.DataPipeline(*stages)
        num_batches = None
    else:
        raise UserError(f"loader mode must be 'train' or 'test', not {config.mode!r}")
    loader = ShardLoader(dataset, batch_size=None, shuffle=False, num_workers=config.num_workers)
    loader.num_batches = num_batches
    return loader
