"""Speech-image matching objective (S2IGAN's speech embedding network; AttnGAN's DAMSM sentence loss).

matching:    S = scale * cos(image_i, speech_j) over the batch; off-diagonal pairs of the same class are set to
             -inf (they are not negatives); cross-entropy image->speech plus speech->image. Under torchrun the
             batch is the global one: every process's pairs are gathered (gradients flow back to the process
             that computed them, as open_clip's `gather_features`), so each pair meets every process's negatives
             and every process computes the same loss; with DDP's gradient mean, 2 processes at micro-batch B
             take the step of 1 process at micro-batch 2B. Micro-batches accumulated within one process do not
             see each other's pairs.
distinctive: one Linear(embed_dim -> training classes) shared by both modalities; cross-entropy on each.
The loss owns the forward passes: the training loop only hands it batches.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from s2ikit.training.distributed import gather_rows


def matching_loss(image: torch.Tensor, speech: torch.Tensor, class_ids: torch.Tensor, scale: float) -> torch.Tensor:
    """image, speech (B, D) unit vectors; class_ids (B,), -1 where unknown (never masked)."""
    sim = scale * image @ speech.T
    same = (class_ids.unsqueeze(1) == class_ids.unsqueeze(0)) & (class_ids.unsqueeze(1) >= 0)
    same.fill_diagonal_(False)
    sim = sim.masked_fill(same, float("-inf"))
    target = torch.arange(sim.shape[0], device=sim.device)
    return F.cross_entropy(sim, target) + F.cross_entropy(sim.T, target)


class EncoderLoss:
    def __init__(
        self,
        speech_encoder: nn.Module,
        image_encoder: nn.Module,
        classifier: nn.Module | None,
        scale: float,
        distinctive_weight: float,
    ):
        self.speech_encoder, self.image_encoder, self.classifier = speech_encoder, image_encoder, classifier
        self.scale, self.distinctive_weight = scale, distinctive_weight

    def __call__(self, batch: dict[str, torch.Tensor], class_index: torch.Tensor | None) -> tuple[torch.Tensor, dict]:
        """class_index: training-class index per sample for the distinctive loss; None when a sample has none
        (decided on the host by the caller, so the step needs no device sync)."""
        speech = self.speech_encoder(batch["mel"], batch["mel_lengths"]).float()
        image = self.image_encoder(batch["image"]).float()
        match = matching_loss(gather_rows(image), gather_rows(speech), gather_rows(batch["class_id"]), self.scale)
        loss, stats = match, {"matching": match.detach()}  # on the device: the engine reads them per interval
        if self.classifier is not None and self.distinctive_weight > 0 and class_index is not None:
            distinct = F.cross_entropy(self.classifier(image), class_index) + F.cross_entropy(
                self.classifier(speech), class_index
            )
            loss = loss + self.distinctive_weight * distinct
            stats["distinctive"] = distinct.detach()
        stats["loss"] = loss.detach()
        return loss, stats
