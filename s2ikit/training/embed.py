"""`s2ikit embed`: every utterance's speech embedding (and every image's) to HDF5, for GAN training and evaluation.

Layout, one group per split:
    /<split>/keys          (N,) utf-8 "KEY/CAPTION_INDEX"
    /<split>/embeddings    (N, D) float32, unit vectors from the selected speech encoder
    /<split>/class_ids     (N,) int64
    /<split>/image_keys    (M,) utf-8, one per image
    /<split>/image_embeddings (M, D) float32
Attributes record the run and the encoder epoch.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import torch

from s2ikit.core.embeddings import embed_split
from s2ikit.core.factories import load_encoders
from s2ikit.core.retrieval import cross_modal_retrieval
from s2ikit.data.dataset_info import read_dataset
from s2ikit.utils.atomic import atomic_path


def export_embeddings(
    run_dir: str | Path, data_dir: str | Path, out: str | Path, batch_size: int = 128, image_weights: str = ""
) -> dict[str, int]:
    enc, ckpt = load_encoders(run_dir, image_weights)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    enc.speech.to(device), enc.image.to(device)
    splits = read_dataset(data_dir).splits
    counts = {}
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as h5:
        h5.attrs["run_dir"] = str(run_dir)
        h5.attrs["data_dir"] = str(data_dir)
        h5.attrs["encoder_epoch"] = int(ckpt["epoch"])
        for split in sorted(splits):
            emb = embed_split(enc, Path(data_dir), split, batch_size, device)
            group = h5.create_group(split)
            keys = [f"{k}/{int(c)}" for k, c in zip(emb.keys, emb.caption_index)]
            group["keys"] = np.array(keys, dtype=h5py.string_dtype())
            group["embeddings"] = emb.speech.numpy()
            group["class_ids"] = emb.class_ids.numpy().astype(np.int64)
            group["image_keys"] = np.array(emb.image_keys, dtype=h5py.string_dtype())
            group["image_embeddings"] = emb.images.numpy()
            counts[split] = len(keys)
    return counts


def split_retrieval(h5_path: str | Path, split: str) -> dict[str, float]:
    """Speech<->image retrieval (R@k, class mAP) among one split's exported embeddings."""
    with h5py.File(h5_path, "r") as h5:
        group = h5[split]
        image_keys = [k.decode() for k in group["image_keys"][:]]
        position = {k: i for i, k in enumerate(image_keys)}
        keys = [k.decode().rsplit("/", 1)[0] for k in group["keys"][:]]
        speech_class = torch.from_numpy(group["class_ids"][:])
        image_class = torch.zeros(len(image_keys), dtype=torch.long)
        for key, cls in zip(keys, speech_class.tolist()):
            image_class[position[key]] = cls
        return cross_modal_retrieval(
            torch.from_numpy(group["embeddings"][:]),
            torch.tensor([position[k] for k in keys]),
            speech_class,
            torch.from_numpy(group["image_embeddings"][:]),
            image_class,
        )
