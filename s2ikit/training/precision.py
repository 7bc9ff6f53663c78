"""Mixed precision for both trainings: the `precision` setting (auto, bf16, fp16, fp32) and `tf32`.

auto is bf16 on a CUDA device that supports it, fp16 on an older CUDA device, fp32 elsewhere (CPU). bf16 and fp16
run the networks' forward passes under autocast on the training device's type (on a CPU too, which is how the
fp16 path is tested without a GPU). fp16 adds a GradScaler (torch.amp): each loss is multiplied by the scale
before its backward, and `step` divides it out of the gradients and skips a step whose gradients overflowed, then
lowers the scale; that step's statistics, not finite, are left out of the logged means and of the divergence
check (`Task.train_step` returns None). MA-GP's gradient penalty differentiates D's scores inside the loss: it
takes the gradient of the scaled scores and divides the scale out before forming the penalty (torch's AMP recipe,
"gradient penalty"), so the double backward's gradients do not underflow in fp16 and the penalty is not scaled
twice. The scaler's state is part of the training state, so a resumed fp16 run goes on with the same scale.
tf32 true allows TF32 in fp32 matmuls and convolutions (Ampere and later); false leaves torch's defaults.
fp32 and bf16 need no scaler, and fp32 calls exactly what a training without this module would.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve(setting: str, device: torch.device) -> str:
    """The precision `auto` stands for on `device`; other settings as they are."""
    if setting != "auto":
        return setting
    if device.type != "cuda":
        return "fp32"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


class Precision:
    def __init__(self, setting: str, device: torch.device, tf32: bool = False):
        self.name, self.device_type = resolve(setting, device), device.type
        if tf32:
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        self.scaler = torch.amp.GradScaler(device.type) if self.name == "fp16" else None

    def autocast(self) -> AbstractContextManager:
        """A context for the forward passes (reusable)."""
        if self.name == "fp32":
            return nullcontext()
        return torch.autocast(self.device_type, dtype=DTYPES[self.name])

    def penalty_scale(self) -> float | None:
        """What a gradient penalty multiplies its scores by before differentiating them (None: nothing)."""
        return self.scaler.get_scale() if self.scaler is not None else None

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is not None:
            self.scaler.step(optimizer)
        else:
            optimizer.step()

    def update(self) -> bool:
        """Once per training step, after every optimiser's `step`; True when the scaler skipped the step (its
        gradients overflowed, and the scale was lowered: what fp16 does early in a run and now and then)."""
        if self.scaler is None:
            return False
        before = self.scaler.get_scale()
        self.scaler.update()
        return self.scaler.get_scale() < before

    def state_dict(self) -> dict[str, Any]:
        return self.scaler.state_dict() if self.scaler is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)
