"""Speech embeddings of a batch from the frozen speech encoder, and the run folder's speech cache file.

With the cache on, every training utterance's embedding is computed once, in a fixed order (the split's shards in
order, fixed batches), so an embedding never depends on which other utterances shared its batch: an interrupted
and resumed run sees exactly the embeddings an uninterrupted one does. The table lives on the host; each step
moves only its batch's rows to the device.

With a cache file (`RUN/speech-cache.h5`, written by the GAN's main rank), the table is computed once per run, not
once per process and restart: the file is written atomically, and every process memory-maps it, so the processes
of a node share one copy in the page cache. The file records what it was computed from (the encoder's weights,
the precision and batching of the GAN's own path, the training split); a file that does not match is computed
again. It is computed by the GAN's own path rather than read from the encoder run's `embeddings.h5`, which is
computed at another batch size and without the GAN's autocast: its last bits may differ, and the GAN's numbers
would then depend on which file was there.

Layout: /keys (N,) utf-8 "KEY/CAPTION_INDEX"; /embeddings (N, D) float32, contiguous (memory-mapped);
attribute `signature` (JSON) names what it was computed from.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch import nn

from s2ikit.config import LoaderConfig
from s2ikit.data.dataset_info import read_dataset
from s2ikit.data.loader import make_loader
from s2ikit.utils.atomic import atomic_path
from s2ikit.utils.errors import UserError

CACHE_FILE = "speech-cache.h5"
_POLL_SECONDS = 2.0  # how often a rank waiting for the main rank's file looks for it


def encoder_digest(encoder: nn.Module) -> str:
    """SHA-256 of the encoder's weights, in state-dict order: which encoder a cache file was computed by."""
    digest = hashlib.sha256()
    for name, tensor in encoder.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def cache_signature(encoder: nn.Module, data_dir: Path, precision: str, batch_size: int) -> dict[str, Any]:
    """What a cache file's table is computed from: the encoder's weights, the training split (its shards and
    counts) and features, and the GAN's path (precision, batch size). Not the data folder's place: a moved data
    set keeps its cache."""
    dataset = read_dataset(data_dir)
    train = dataset.splits["train"]
    return {
        "encoder": encoder_digest(encoder),
        "train": {"samples": train.samples, "captions": train.captions, "shards": list(train.shards)},
        "features": dataset.settings.get("features"),
        "precision": precision,
        "batch_size": batch_size,
    }


def _row_key(key: tuple[str, int]) -> str:
    return f"{key[0]}/{key[1]}"


def write_cache(path: Path, keys: list[tuple[str, int]], parts: list[np.ndarray], signature: dict[str, Any]) -> None:
    """The table of `parts` (row blocks, in order), written block by block: never a second copy in memory."""
    width = parts[0].shape[1] if parts else 0
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
        h5.attrs["signature"] = json.dumps(signature, sort_keys=True)
        h5["keys"] = np.array([_row_key(k) for k in keys], dtype=h5py.string_dtype())
        # no chunks, no compression: one contiguous block, so it maps
        table = h5.create_dataset("embeddings", shape=(len(keys), width), dtype=np.float32)
        start = 0
        for part in parts:
            table[start : start + len(part)] = part
            start += len(part)


def stack_rows(parts: list[np.ndarray]) -> np.ndarray:
    """One table of row blocks, emptying `parts` as it goes (so the blocks and the table are not all held)."""
    table = np.empty((sum(len(p) for p in parts), parts[0].shape[1] if parts else 0), np.float32)
    start = 0
    while parts:
        part = parts.pop(0)
        table[start : start + len(part)] = part
        start += len(part)
    return table


def read_cache(path: Path, signature: dict[str, Any]) -> tuple[dict[tuple[str, int], int], np.ndarray] | None:
    """The file's key -> row dict and its memory-mapped table; None when absent, unreadable or from elsewhere."""
    try:
        with h5py.File(path, "r") as h5:
            if json.loads(h5.attrs["signature"]) != json.loads(json.dumps(signature, sort_keys=True)):
                return None
            dataset = h5["embeddings"]
            shape, dtype, offset = dataset.shape, dataset.dtype, dataset.id.get_offset()
            names = [k.decode() for k in h5["keys"][:]]
            if offset is None:  # an empty table has no storage to map
                table = dataset[:]
    except (OSError, KeyError, ValueError):
        return None
    rows = {}
    for i, name in enumerate(names):
        key, caption = name.rsplit("/", 1)
        rows[key, int(caption)] = i
    if offset is not None:
        table = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)
    return rows, table


class SpeechEmbeddings:
    def __init__(
        self,
        encoder: nn.Module,
        autocast,
        device: torch.device,
        data_dir: Path | None,
        batch_size: int = 64,
        cache_file: Path | None = None,
        precision: str = "",
        writer: bool = True,
    ):
        """`data_dir`: cache every training utterance of that data set; None: compute each batch's anew.
        `cache_file`: keep the table there, computed by the `writer` (the main rank) unless it holds a table from
        the same encoder, data, `precision` (the name `autocast` stands for) and batch size, and memory-mapped by
        every process; None: compute the table in this process."""
        self.encoder, self.autocast, self.device = encoder, autocast, device
        self.known: dict[tuple[str, int], int] | None = None  # key -> row of `table`
        self.table: np.ndarray | None = None
        if data_dir is None:
            return
        if cache_file is None:
            self.known, self.table = self._compute(data_dir, batch_size)
            return
        signature = cache_signature(encoder, data_dir, precision, batch_size)
        found = read_cache(cache_file, signature)
        while found is None and not writer:  # the main rank is writing it (torchrun stops us if it fails)
            time.sleep(_POLL_SECONDS)
            found = read_cache(cache_file, signature)
        if found is None:
            keys, parts = self._compute_rows(data_dir, batch_size)
            write_cache(cache_file, keys, parts, signature)
            del parts
            found = read_cache(cache_file, signature)
            if found is None:
                raise UserError(f"{cache_file}: written, but it cannot be read back; is the run folder's disk full?")
        self.known, self.table = found

    def _compute_rows(self, data_dir: Path, batch_size: int) -> tuple[list[tuple[str, int]], list[np.ndarray]]:
        keys, parts = [], []
        config = LoaderConfig(split="train", mode="test", batch_size=batch_size, split_by_node=False)
        for batch in make_loader(data_dir, config):
            parts.append(self._encode(batch["mel"], batch["mel_lengths"]).cpu().numpy())
            keys += zip(batch["key"], batch["caption_index"].tolist())
        return keys, parts

    def _compute(self, data_dir: Path, batch_size: int) -> tuple[dict[tuple[str, int], int], np.ndarray]:
        keys, parts = self._compute_rows(data_dir, batch_size)
        return {key: i for i, key in enumerate(keys)}, stack_rows(parts)

    @torch.no_grad()
    def _encode(self, mel: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        with self.autocast:
            return self.encoder(mel.to(self.device), lengths.to(self.device)).float()

    def embedding(self, key: tuple[str, int]) -> torch.Tensor:
        """One cached utterance's embedding (on the host)."""
        return torch.from_numpy(np.array(self.table[self.known[key]]))

    def __call__(self, batch: dict[str, Any]) -> torch.Tensor:
        """A batch as the loader yields it (on the host): its speech embeddings on the device."""
        if self.known is None:
            return self._encode(batch["mel"], batch["mel_lengths"])
        return self.rows(zip(batch["key"], batch["caption_index"].tolist()))

    def rows(self, keys: Iterable[tuple[str, int]]) -> torch.Tensor:
        """The cached embeddings of `keys`, gathered on the host and moved to the device: all the device holds."""
        rows = [self.known[key] for key in keys]
        return torch.from_numpy(np.asarray(self.table[rows])).to(self.device)

    @classmethod
    def from_table(cls, known: dict[tuple[str, int], int], table: np.ndarray, device: torch.device) -> SpeechEmbeddings:
        """A cache of a table already at hand (a mapped file's: `read_cache`)."""
        cache = cls(nn.Identity(), nullcontext(), device, None)
        cache.known, cache.table = known, table
        return cache
