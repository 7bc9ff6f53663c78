"""Host syncs per GAN step: how often `train-gan` makes the host wait for the device.

On a GPU every read of a device tensor into Python (`.item()`, `bool()`, `float()`, `.tolist()`, `.numpy()`,
`.cpu()`) waits for all queued kernels, as does an op whose output size depends on the data (`nonzero`,
indexing with a boolean mask), and so does a blocking collective (a barrier, a broadcast read back)
when several GPUs train. The engine keeps its statistics on the device and reads them once per log interval;
this benchmark counts what a real run does, step by step.

It trains the shapes preset's GAN (its real networks, at a few images per class) through the engine for
`--steps` steps. On CPU nothing is "on a device", so the benchmark marks what would be: the networks' weights
and buffers, every batch after `to_device` and every tensor moved with
`.to(device)` (copied here, as a transfer would), and every tensor computed from them (a TorchDispatchMode
follows each op). Reads of host tensors (the loader's batch, noise drawn from a CPU generator, Adam's step
counts) are listed apart: they cost no sync. Collectives are counted where the engine calls them; with one
process they return at once, with N GPUs each one blocks the host.
Usage: python benchmarks/bench_syncs.py [--steps 30] [--log-every 10]
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import tempfile
import traceback
import weakref
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode, _disable_current_modes
from torch.utils._pytree import tree_flatten

import s2ikit.core.embeddings
import s2ikit.training.engine as engine
import s2ikit.training.gan as gan
from s2ikit.config import load_preset

aten = torch.ops.aten
DATA_DEPENDENT = {aten.nonzero, aten.masked_select, aten._unique2, aten.unique_consecutive, aten.unique_dim}
INDEXING = {aten.index, aten.index_put, aten.index_put_, aten._index_put_impl_}
READS = ("item", "tolist", "numpy", "cpu", "__bool__", "__float__", "__int__", "__index__")


class DeviceTracker(TorchDispatchMode):
    """Marks tensors that would live on the training device and counts Python reads of them, by call site."""

    def __init__(self):
        super().__init__()
        self.marked: dict[int, weakref.ref] = {}
        self.step: int | None = None  # the step in progress; None before the first
        self.phase = "setup"
        self.device_reads: collections.Counter = collections.Counter()  # (step, phase, site)
        self.host_reads: collections.Counter = collections.Counter()

    def mark(self, t: torch.Tensor) -> None:
        key = id(t)
        self.marked[key] = weakref.ref(t, lambda _, key=key: self.marked.pop(key, None))

    def on_device(self, t) -> bool:
        ref = self.marked.get(id(t)) if isinstance(t, torch.Tensor) else None
        return ref is not None and ref() is t

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        flat = tree_flatten((args, kwargs))[0]
        if func.overloadpacket in DATA_DEPENDENT and any(self.on_device(a) for a in flat):
            self.read(None, f"{func.overloadpacket.__name__} (output size depends on the data)")
        elif func.overloadpacket in INDEXING and any(
            isinstance(a, torch.Tensor) and a.dtype == torch.bool and self.on_device(a) for a in flat
        ):
            self.read(None, f"{func.overloadpacket.__name__} with a boolean mask")
        out = func(*args, **(kwargs or {}))
        if any(self.on_device(a) for a in flat):
            for o in tree_flatten(out)[0]:
                if isinstance(o, torch.Tensor):
                    self.mark(o)
        return out

    def read(self, t: torch.Tensor | None, what: str = "") -> None:
        """A read of `t` into Python, or (t None) an op on device tensors that waits for the device."""
        if self.step is None:
            return
        stack = traceback.extract_stack()[:-2]
        frame = next((f for f in reversed(stack) if "/s2ikit/" in f.filename), stack[-1])
        site = f"{frame.filename.split('/s2ikit/')[-1]}:{frame.lineno} {what or frame.line.strip()[:60]}"
        (self.device_reads if t is None or self.on_device(t) else self.host_reads)[self.step, self.phase, site] += 1


def patch(tracker: DeviceTracker, collectives: collections.Counter) -> None:
    for name in READS:
        original = getattr(torch.Tensor, name)

        def wrapper(self, *args, _name=name, _original=original, **kwargs):
            tracker.read(self)
            out = _original(self, *args, **kwargs)
            if _name == "cpu" and out is self:  # on CPU `.cpu()` returns the tensor itself: copy, as from a GPU
                with _disable_current_modes():
                    out = self.clone()
            return out

        setattr(torch.Tensor, name, wrapper)

    to = torch.Tensor.to

    def to_training_device(self, *args, **kwargs):  # `.to(device)`: what training code moves is on the device
        out = to(self, *args, **kwargs)
        if any(isinstance(a, (torch.device, str)) for a in (*args, kwargs.get("device"))):
            if out is self:  # on CPU the tensor itself: copy it, as a host -> device transfer does
                with _disable_current_modes():
                    out = self.clone()
            tracker.mark(out)
        return out

    torch.Tensor.to = to_training_device
    moved = s2ikit.core.embeddings.to_device

    def to_device(batch, device):  # on CPU `.to` returns the same tensor: copy, as a host -> device transfer does
        out = moved(batch, device)
        for key, value in out.items():
            if isinstance(value, torch.Tensor):
                out[key] = value.clone()
                tracker.mark(out[key])
        return out

    gan.to_device = to_device
    for name in ("broadcast_flag", "barrier"):
        original = getattr(engine, name)

        def counted(*args, _name=name, _original=original):
            if tracker.step is not None:
                collectives[tracker.step, _name] += 1
            return _original(*args)

        setattr(engine, name, counted)
    train_step = gan.GANTask.train_step

    def step_in(task, batch, step):
        if tracker.step is None:  # the first step: mark what lives on the device
            for module in (task.G, task.D, task.G_ema, task.loss.image_encoder, task.speech_encoder):
                for t in [*module.parameters(), *module.buffers()]:
                    tracker.mark(t)
        tracker.step, tracker.phase = step, "step"
        try:
            return train_step(task, batch, step)
        finally:
            tracker.phase = "engine"  # stats, EMA, logging, snapshots and checkpoints until the next step

    gan.GANTask.train_step = step_in


def tiny_data(tmp: Path) -> tuple[Path, Path]:
    from s2ikit.preparation.prepare import RunOptions, prepare
    from s2ikit.preparation.steps import PrepareContext
    from s2ikit.training.encoder import train_encoder
    from s2ikit.tts.cache import default_cache_dir

    overrides = {"shapes": {"images_per_class": 2, "captions_per_image": 2}, "tts": {"length_scales": "1.0"},
                 "prepare": {"image_size": 32, "shard_size": 16}}  # fmt: skip
    preset = load_preset("shapes", overrides)
    data = tmp / "data"
    prepare(PrepareContext(data, "shapes", preset, None, default_cache_dir()), RunOptions(workers=1))
    encoder = tmp / "encoder"
    config = dataclasses.replace(preset.encoder, epochs=1, num_workers=0)
    train_encoder(data, encoder, config, log=lambda s: None)
    return data, encoder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--log-every", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data, encoder = tiny_data(Path(tmp))
        preset = load_preset("shapes")
        config = dataclasses.replace(
            preset.gan, log_every=args.log_every, sample_every=args.log_every, checkpoint_every=args.steps,
            epochs=args.steps, keep_generators=False, num_workers=0,
        )  # fmt: skip
        tracker, collectives = DeviceTracker(), collections.Counter()
        patch(tracker, collectives)
        with tracker:
            gan.train_gan(data, encoder, Path(tmp) / "gan", config, max_steps=args.steps, log=lambda s: None)
    log_steps = {s for s in range(args.steps) if (s + 1) % args.log_every == 0 or s + 1 == args.steps}
    quiet = [s for s in range(args.steps) if s not in log_steps]

    def per_step(counter, steps, phase=None) -> float:
        keys = [k for k in counter if k[0] in steps and (phase is None or k[1] == phase)]
        return sum(counter[k] for k in keys) / max(len(steps), 1)

    print(f"\nhost syncs per GAN step (shapes preset's networks, {args.steps} steps, log and samples every "
          f"{args.log_every}, one checkpoint at the end)")  # fmt: skip
    print(f"{'what':<46} | {'other steps':>11} | {'log steps':>9}")
    rows = [
        ("device reads in train_step", per_step(tracker.device_reads, quiet, "step"),
         per_step(tracker.device_reads, log_steps, "step")),
        ("device reads in the engine (stats, EMA, logs)", per_step(tracker.device_reads, quiet, "engine"),
         per_step(tracker.device_reads, log_steps, "engine")),
        ("blocking collectives (with several GPUs)", per_step(collectives, quiet), per_step(collectives, log_steps)),
        ("host reads (loader batch, CPU noise): no sync", per_step(tracker.host_reads, quiet),
         per_step(tracker.host_reads, log_steps)),
    ]  # fmt: skip
    for name, other, logged in rows:
        print(f"{name:<46} | {other:>11.2f} | {logged:>9.2f}")
    print("goal: 0 device reads and 0 collectives on the steps between log intervals")
    for title, counter in (("device reads", tracker.device_reads), ("host reads", tracker.host_reads)):
        sites = collections.Counter()
        for (_, phase, site), n in counter.items():
            sites[phase, site] += n
        print(f"\n{title} by site, over all {args.steps} steps:")
        for (phase, site), n in sites.most_common():
            print(f"  {n:>5}  [{phase}] {site}")
    collective_sites = collections.Counter()
    for (_, name), n in collectives.items():
        collective_sites[name] += n
    print(f"\ncollectives over all {args.steps} steps: " + (", ".join(f"{k} {v}" for k, v in collective_sites.items())
                                                         or "none"))  # fmt: skip


if __name__ == "__main__":
    main()
