"""The generator's exponential moving average (what samples, checkpoints and evaluation use) and its
BatchNorm statistics."""

from __future__ import annotations

import torch
from torch import nn


def ema_decay_at(decay: float, rampup: float, step: int) -> float:
    """The EMA's decay after `step` steps: its window 1 / (1 - decay) grows as `rampup` x the steps done
    (StyleGAN2-ADA's ema_rampup), so that an early EMA is not mostly the random initialisation."""
    window = max(1.0, rampup * (step + 1))
    return min(decay, 1.0 - 1.0 / window)


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    for p_ema, p in zip(ema.parameters(), model.parameters()):
        p_ema.lerp_(p, 1.0 - decay)
    for b_ema, b in zip(ema.buffers(), model.buffers()):
        b_ema.copy_(b)


@torch.no_grad()
def standing_statistics(G_ema: nn.Module, speech_bank: list[torch.Tensor], z_dim: int, z_seed: int) -> None:
    """Re-estimate the EMA generator's BatchNorm statistics with its own weights (BigGAN's "standing stats").

    The VSFMs' BatchNorm buffers are copied from the trained G each step, but they describe G's activations,
    not those of the averaged weights; sampling with them gives washed-out, mixed-colour images early in a run
    (docs/experiments/shapes-ema.md).
    """
    norms = [m for m in G_ema.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
    G_ema.train()
    gen = torch.Generator().manual_seed(z_seed)
    for i, speech in enumerate(speech_bank):
        for m in norms:
            # a cumulative average over the bank, as momentum=None gives, without BatchNorm reading its batch
            # counter from the device (a host sync per layer and batch)
            m.momentum = 1.0 / (i + 1)
        G_ema(torch.randn(speech.shape[0], z_dim, generator=gen).to(speech.device), speech)
    G_ema.eval()
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
