"""Process-group setup for `torchrun`: NCCL on GPUs, gloo on CPU; single process when not launched by torchrun."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
import torch.distributed.nn as dist_nn

from s2ikit.utils.errors import UserError


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def process_rank() -> int:
    """This process's rank: the process group's once joined, else torchrun's RANK, else 0 (a single process).
    The one place the rank is read; `DistInfo.rank` holds it for a training."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0"))


def check_launcher(environ: dict[str, str] | None = None) -> None:
    """Refuse `srun` starting several copies of a training without torchrun: each would train alone, all on one run
    folder. torchrun sets RANK and WORLD_SIZE; srun sets SLURM_PROCID and the step's task count (SLURM_STEP_NUM_TASKS,
    else SLURM_NTASKS) for every task it starts. Not refused: one task, or torchrun under srun."""
    env = os.environ if environ is None else environ
    tasks = env.get("SLURM_STEP_NUM_TASKS", env.get("SLURM_NTASKS", "1"))
    srun_task = "SLURM_PROCID" in env
    if srun_task and tasks.isdigit() and int(tasks) > 1 and not ("RANK" in env and "WORLD_SIZE" in env):
        raise UserError(
            f"started as one of {tasks} Slurm tasks without torchrun: each would train alone on the same run folder. "
            "Start one task per node running torchrun (docs/cluster.md): srun --ntasks-per-node=1 torchrun "
            "--nnodes $SLURM_NNODES --nproc_per_node 4 --rdzv_backend c10d --rdzv_endpoint HOST:29500 -m s2ikit ..."
        )


def init_distributed(device: str = "auto") -> DistInfo:
    """Join the process group when WORLD_SIZE > 1 (set by torchrun) and pick this process's device."""
    check_launcher()
    cuda = torch.cuda.is_available() and device in ("auto", "cuda")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    if cuda:
        torch.cuda.set_device(local_rank)
    return DistInfo(process_rank(), world, torch.device(f"cuda:{local_rank}" if cuda else "cpu"))


def broadcast_flag(flag: bool, info: DistInfo) -> bool:
    """Rank 0's decision, seen by every rank (so all stop at the same step)."""
    if info.world_size == 1:
        return flag
    t = torch.tensor([1 if flag else 0], device=info.device)
    dist.broadcast(t, 0)
    return bool(t.item())


def any_rank(flag: bool, info: DistInfo) -> bool:
    """Whether any rank's `flag` is set, seen by every rank (a host sync under torchrun)."""
    if info.world_size == 1:
        return flag
    t = torch.tensor([1 if flag else 0], device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def barrier(info: DistInfo) -> None:
    if info.world_size > 1:
        dist.barrier()


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def sync_gradients(module: torch.nn.Module, info: DistInfo, accumulation: int = 1) -> None:
    """Average gradients across ranks by hand after a phase (as StyleGAN2-ADA does): DDP wrappers cannot carry
    MA-GP's double backward. The gradients hold the sum of `accumulation` micro-batches' each: the result is the
    mean over all of them (one division, after the sum: training/scale.py)."""
    if info.world_size == 1:
        if accumulation > 1:
            for p in module.parameters():
                if p.grad is not None:
                    p.grad.div_(accumulation)
        return
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    flat = torch.cat([g.flatten() for g in grads])
    dist.all_reduce(flat)
    flat /= info.world_size * accumulation
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def mean_statistics(parts: list[dict[str, torch.Tensor]], info: DistInfo) -> dict[str, torch.Tensor]:
    """A step's statistics: the mean over this process's micro-batches and over the processes (one all-reduce);
    a single micro-batch of a single process is returned as it is."""
    if len(parts) == 1 and info.world_size == 1:
        return parts[0]
    keys = list(parts[0])
    total = torch.stack([parts[0][k].float() for k in keys])
    for part in parts[1:]:
        total = total + torch.stack([part[k].float() for k in keys])
    if info.world_size > 1:
        dist.all_reduce(total)
    total = total / (len(parts) * info.world_size)
    return dict(zip(keys, total.unbind()))


def device_names(info: DistInfo) -> list[str]:
    """Every rank's device, by rank: the GPU's name, or "cpu"."""
    mine = torch.cuda.get_device_name(info.device) if info.device.type == "cuda" else info.device.type
    if info.world_size == 1:
        return [mine]
    names: list[Any] = [None] * info.world_size
    dist.all_gather_object(names, mine)
    return [str(n) for n in names]


def broadcast_parameters(module: torch.nn.Module, info: DistInfo) -> None:
    """Rank 0's initial weights everywhere."""
    if info.world_size > 1:
        for tensor in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(tensor.data, 0)


def gather_rows(tensor: torch.Tensor) -> torch.Tensor:
    """Every process's rows of `tensor`, in rank order, on every process (open_clip's `gather_features`); a
    tensor that requires grad passes gradients back to the process that owns each row, summed over the
    processes. The tensor itself when not under torchrun. Every process must hold the same number of rows."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor
    if tensor.requires_grad:
        return torch.cat(dist_nn.all_gather(tensor))
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts)
