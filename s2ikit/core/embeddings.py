"""Every caption's speech embedding and every image's embedding of one split, from a pair of trained encoders:
what encoder validation, `s2ikit embed` and evaluation's retrieval numbers are computed from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from s2ikit.config import LoaderConfig
from s2ikit.core.factories import Encoders
from s2ikit.core.retrieval import cross_modal_retrieval
from s2ikit.data.loader import KeySelect, make_loader


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


@dataclass
class SplitEmbeddings:
    """Every caption's speech embedding and every image's embedding of one split (or a selection of it)."""

    keys: list[str]  # image key of each caption
    caption_index: torch.Tensor  # (N,)
    speech: torch.Tensor  # (N, D)
    class_ids: torch.Tensor  # (N,)
    speech_image: torch.Tensor  # (N,) row of each caption's image in `images`
    image_keys: list[str]
    images: torch.Tensor  # (M, D)
    image_class: torch.Tensor  # (M,)

    def retrieval(self) -> dict[str, float]:
        return cross_modal_retrieval(self.speech, self.speech_image, self.class_ids, self.images, self.image_class)


@torch.no_grad()
def embed_split(
    enc: Encoders, data_dir: Path, split: str, batch_size: int, device: torch.device, select: KeySelect | None = None
) -> SplitEmbeddings:
    enc.speech.eval(), enc.image.eval()
    loader = make_loader(data_dir, LoaderConfig(split=split, mode="test", batch_size=batch_size), select)
    keys, captions, speech, classes, speech_img, images, image_cls, image_pos = [], [], [], [], [], [], [], {}
    for batch in loader:
        batch = to_device(batch, device)
        speech.append(enc.speech(batch["mel"], batch["mel_lengths"]).float().cpu())
        classes.append(batch["class_id"].cpu())
        captions.append(batch["caption_index"].cpu())
        keys += batch["key"]
        new = []  # first occurrence of each image (a batch holds several captions of one image)
        for i, key in enumerate(batch["key"]):
            if key not in image_pos:
                image_pos[key] = len(image_pos)
                new.append(i)
        if new:
            images.append(enc.image(batch["image"][new]).float().cpu())
            image_cls.append(batch["class_id"][new].cpu())
        speech_img.append(torch.tensor([image_pos[key] for key in batch["key"]]))
    return SplitEmbeddings(
        keys, torch.cat(captions), torch.cat(speech), torch.cat(classes), torch.cat(speech_img),
        list(image_pos), torch.cat(images), torch.cat(image_cls),
    )  # fmt: skip
