"""Speech embeddings of a batch from the frozen speech encoder, each utterance computed once when cached."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class SpeechEmbeddings:
    """A batch's speech embeddings from the frozen encoder, each utterance computed once when `cache` is on.

    Worth it on CPU: at batch 16 on shapes the encoder is about a tenth of a step, and after a few epochs every
    caption has been met. Only the batch's new utterances go through the encoder (their padding is cut to them).
    """

    def __init__(self, encoder: nn.Module, autocast, cache: bool):
        self.encoder, self.autocast, self.cache = encoder, autocast, cache
        self.known: dict[tuple[str, int], torch.Tensor] = {}

    @torch.no_grad()
    def __call__(self, batch: dict[str, Any]) -> torch.Tensor:
        ids = list(zip(batch["key"], batch["caption_index"].tolist()))
        new = [i for i, u in enumerate(ids) if u not in self.known] if self.cache else list(range(len(ids)))
        if new:
            rows = torch.tensor(new, device=batch["mel"].device)
            lengths = batch["mel_lengths"][rows]
            with self.autocast:
                fresh = self.encoder(batch["mel"][rows, : int(lengths.max())], lengths).float()
            if not self.cache:
                return fresh
            self.known.update((ids[i], e) for i, e in zip(new, fresh))
        return torch.stack([self.known[u] for u in ids])
