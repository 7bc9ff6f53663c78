"""Streams prepared shards as padded batches, in open_clip's stage order.

train: resampled shard list (seeded per rank and worker) -> tar to samples (warn and continue on corrupt
       members) -> shuffle -> decode -> one random caption per image -> batches; `with_epoch` gives every
       rank and worker the same number of batches, so DDP ranks never wait on each other at the epoch's end.
test:  shard list in order -> split_by_node -> split_by_worker -> tar to samples -> decode -> every caption
       once -> batches (last one partial).

A batch is a dict: image (B, 3, H, W) in [-1, 1], mel (B, T_max, n_mels) zero-padded, mel_lengths (B,),
class_id (B,), caption_index (B,), key (list), text (list), attributes (list of the records' attribute dicts).
"""

from __future__ import annotations

import io
import json
import math
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import webdataset as wds
from PIL import Image

from s2ikit.config import LoaderConfig
from s2ikit.utils.errors import UserError

IMAGE_EXTENSIONS = ("png", "jpg", "jpeg")


def shard_list(data_dir: str | Path, split: str) -> tuple[list[str], dict[str, int]]:
    """Shard paths of `split` with samples (from sizes.json) and the sizes themselves."""
    folder = Path(data_dir) / "shards" / split
    sizes_file = folder / "sizes.json"
    if not sizes_file.is_file():
        raise UserError(f"{sizes_file}: missing; is {data_dir} a finished `s2ikit prepare` output?")
    sizes = json.loads(sizes_file.read_text())
    urls = [str(folder / name) for name, n in sorted(sizes.items()) if n > 0]
    if not urls:
        raise UserError(f"{folder}: no samples in split '{split}'")
    return urls, sizes


def decode_sample(sample: dict[str, Any]) -> dict[str, Any]:
    """Raw tar members -> image tensor, metadata and the per-caption log-mels."""
    meta = json.loads(sample["json"])
    ext = next(e for e in IMAGE_EXTENSIONS if e in sample)
    with Image.open(io.BytesIO(sample[ext])) as im:
        array = np.asarray(im.convert("RGB"), dtype=np.uint8)
    image = torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(127.5).sub_(1.0)
    mels = {
        c["index"]: np.load(io.BytesIO(sample[f"c{c['index']:02d}.npy"]), allow_pickle=False) for c in meta["captions"]
    }
    return {"key": meta["key"], "image": image, "meta": meta, "mels": mels}


def _item(sample: dict[str, Any], caption: dict[str, Any]) -> dict[str, Any]:
    return {
        "key": sample["key"],
        "image": sample["image"],
        "mel": torch.from_numpy(sample["mels"][caption["index"]].astype(np.float32)),
        "class_id": sample["meta"]["class_id"],
        "caption_index": caption["index"],
        "text": caption["text"],
        "attributes": sample["meta"].get("attributes", {}),
    }


class RandomCaption:
    """One caption per image, chosen by an RNG seeded per rank and DataLoader worker (reproducible runs)."""

    def __init__(self, seed: int):
        self.seed = seed

    def __call__(self, source: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        rng = random.Random(wds.utils.make_seed(wds.utils.pytorch_worker_seed(), self.seed))
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
    }


def first_rows(keys: list[str], seen: set[str]) -> list[int]:
    """Rows of a batch whose image key is new (test mode yields one row per caption); adds them to `seen`."""
    rows = []
    for i, key in enumerate(keys):
        if key not in seen:
            seen.add(key)
            rows.append(i)
    return rows


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


def make_loader(
    data_dir: str | Path, config: LoaderConfig, select: KeySelect | None = None, num_samples: int | None = None
) -> wds.WebLoader:
    """A WebLoader over one split; `.num_batches` tells how many batches each rank sees per epoch (train).

    `select` filters samples by key; then `num_samples` (how many it keeps) sizes the training epoch.
    """
    urls, sizes = shard_list(data_dir, config.split)
    selected = [wds.select(select)] if select is not None else []
    if config.mode == "train":
        workers = max(1, config.num_workers)
        n = num_samples if num_samples is not None else sum(sizes.values())
        global_batches = math.ceil(n / (config.batch_size * world_size()))
        per_worker = math.ceil(global_batches / workers)
        stages = [
            wds.ResampledShards(urls, seed=config.seed, deterministic=True),
            wds.tarfile_to_samples(handler=wds.warn_and_continue),
            *selected,
            wds.shuffle(config.shuffle_buffer, initial=min(config.shuffle_buffer, 100), seed=config.seed),
            wds.map(decode_sample, handler=wds.warn_and_continue),
            RandomCaption(config.seed),
            wds.batched(config.batch_size, collation_fn=collate, partial=False),
        ]
        dataset = wds.DataPipeline(*stages).with_epoch(per_worker)
        num_batches = per_worker * workers
    elif config.mode == "test":
        stages = [
            wds.SimpleShardList(urls),
            *([wds.split_by_node] if config.split_by_node else []),
            wds.split_by_worker,
            wds.tarfile_to_samples(handler=wds.warn_and_continue),
            *selected,
            wds.map(decode_sample, handler=wds.warn_and_continue),
            every_caption,
            wds.batched(config.batch_size, collation_fn=collate, partial=True),
        ]
        dataset = wds.DataPipeline(*stages)
        num_batches = None
    else:
        raise UserError(f"loader mode must be 'train' or 'test', not {config.mode!r}")
    loader = wds.WebLoader(dataset, batch_size=None, shuffle=False, num_workers=config.num_workers)
    loader.num_batches = num_batches
    return loader
