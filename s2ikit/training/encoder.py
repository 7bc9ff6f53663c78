"""`s2ikit train-encoder`: pretrain the speech encoder against an image encoder (S2IGAN's recipe).

`EncoderTask` supplies the engine (training/engine.py) with the step (augmentation, `EncoderLoss`, which owns the
forward passes, one Adam step) and the epoch's end (learning-rate schedule, validation, the best checkpoint).
Run folder: config.json, metrics.jsonl, status.json, checkpoints/encoder-state.pt (resume: networks, optimiser,
scheduler, RNG, epoch), checkpoints/encoder-best.pt (networks and the arguments that rebuild them, chosen on
validation); after training, embeddings.h5 (every utterance's embedding, training/embed.py) and
test_retrieval.json (the test split's retrieval, never used for selection).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from s2ikit.config import EncoderConfig, LoaderConfig, as_dict
from s2ikit.core import checkpoints
from s2ikit.core.augment import add_noise, augment_images, mask_speech, stretch_time, warp_mel
from s2ikit.core.embeddings import embed_split, to_device
from s2ikit.core.factories import ENCODER_MODEL_SETTINGS, Encoders, build_encoders
from s2ikit.data.loader import KeySelect, make_loader
from s2ikit.models.image_encoder import trainable_state
from s2ikit.training.distributed import DistInfo, cleanup, init_distributed, mean_statistics
from s2ikit.training.embed import export_embeddings, split_retrieval
from s2ikit.training.encoder_data import EncoderData, load_encoder_data
from s2ikit.training.encoder_loss import EncoderLoss
from s2ikit.training.engine import Engine, Schedule, Task
from s2ikit.training.precision import Precision
from s2ikit.training.run_lock import hold_run
from s2ikit.training.scale import plan_batches
from s2ikit.utils.atomic import write_json
from s2ikit.utils.seeds import derive_seed

TEST_RETRIEVAL = "test_retrieval.json"


def validate(enc: Encoders, data: EncoderData, config: EncoderConfig, device: torch.device) -> dict[str, float]:
    """Speech<->image retrieval on the held-out training images: every caption against every image."""
    return embed_split(enc, data.root, "train", config.batch_size, device, KeySelect(data.val_keys, True)).retrieval()


def selection_metric(metrics: dict[str, float]) -> float:
    return metrics.get("s2i_mAP", metrics["s2i_R@10"])


class EncoderTask(Task):
    kind, state_file, model_settings = "encoder-state", checkpoints.ENCODER_STATE, ENCODER_MODEL_SETTINGS

    def __init__(self, data_dir: Path, run_dir: Path, config: EncoderConfig, info: DistInfo, image_weights: str):
        self.run_dir, self.config, self.info, self.image_weights = run_dir, config, info, image_weights
        self.plan = plan_batches("encoder", config.batch_size, config.batch_per_process, info.world_size, info.rank)
        torch.manual_seed(config.seed)
        random.seed(config.seed)
        self.data = load_encoder_data(data_dir, config.val_fraction, config.seed)
        self.enc = build_encoders(config, self.data.n_mels, image_weights)
        self.enc.speech.to(info.device), self.enc.image.to(info.device)
        self.classifier = None
        if config.distinctive_weight > 0 and self.data.class_index:
            self.classifier = nn.Linear(config.embed_dim, len(self.data.class_index)).to(info.device)
        self.modules = [m for m in (self.enc.speech, self.enc.image, self.classifier) if m is not None]
        params = [p for m in self.modules for p in m.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(
            params, lr=config.lr, betas=tuple(config.betas), weight_decay=config.weight_decay
        )
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, config.lr_step_epochs, config.lr_gamma)
        self.best, self.best_metrics = float("-inf"), {}
        wrap = (lambda m: DistributedDataParallel(m)) if info.world_size > 1 else (lambda m: m)
        wrapped = [wrap(self.enc.speech), wrap(self.enc.image), wrap(self.classifier) if self.classifier else None]
        self.ddp = [m for m in wrapped if isinstance(m, DistributedDataParallel)]
        self.loss = EncoderLoss(*wrapped, config.matching_scale, config.distinctive_weight)
        self.precision = Precision(config.precision, info.device, config.tf32)
        self.autocast = self.precision.autocast()
        self.class_lookup = torch.full((max(self.data.class_index, default=0) + 2,), -1, dtype=torch.long)
        for cid, idx in self.data.class_index.items():
            self.class_lookup[cid] = idx
        self.steps_per_epoch = self.loader(0, 0).num_batches

    def loader(self, epoch: int, slot: int):
        """The training stream of one micro-batch slot (training/scale.py)."""
        config = self.config
        return make_loader(
            self.data.root,
            LoaderConfig(
                batch_size=self.plan.per_process,
                num_workers=config.num_workers,
                seed=derive_seed(config.seed, "encoder/loader", epoch),
            ),
            KeySelect(self.data.fit_keys, True),
            num_samples=len(self.data.fit_keys),
            stream=(slot, self.plan.slots),
        )

    def begin_epoch(self, epoch: int) -> None:
        for m in self.modules:  # validation left them in eval mode
            m.train()

    def batches(self, epoch: int) -> Iterable[tuple[tuple[dict[str, Any], torch.Generator], ...]]:
        """Each step's micro-batches (one per slot of this process), each with its slot's augmentation generator,
        which the epoch's steps draw from in turn."""
        # seeded per (epoch, slot): reproducible, independent of where a resumed run starts and of which process
        # runs the slot (with one slot per process, the slot is the rank)
        slots = self.plan.my_slots
        rngs = [torch.Generator().manual_seed(derive_seed(self.config.seed, "encoder/augment", epoch, slot))
                for slot in slots]  # fmt: skip
        loaders = [self.loader(epoch, slot) for slot in slots]
        return (tuple(zip(micro, rngs)) for micro in zip(*loaders))

    def train_step(self, items: tuple[tuple[dict[str, Any], torch.Generator], ...], step: int) -> dict[str, Any] | None:
        config, accumulation = self.config, self.plan.accumulation
        self.optimizer.zero_grad(set_to_none=True)
        parts = []
        for j, (batch, rng) in enumerate(items):
            batch["image"] = augment_images(batch["image"], config.image_augment, rng)
            batch["mel"] = mask_speech(batch["mel"], batch["mel_lengths"], config.mask_mel_bins, config.mask_frames,
                                       rng)  # fmt: skip
            batch["mel"] = warp_mel(batch["mel"], batch["mel_lengths"], config.vtlp_warp, rng)
            batch["mel"], batch["mel_lengths"] = stretch_time(batch["mel"], batch["mel_lengths"], config.tempo_stretch,
                                                              rng)  # fmt: skip
            batch["mel"] = add_noise(batch["mel"], batch["mel_lengths"], config.mel_noise, rng)
            class_index = self.class_lookup[batch["class_id"]]  # on the host: no device sync for the check
            class_index = class_index.to(self.info.device) if bool((class_index >= 0).all()) else None
            batch = to_device(batch, self.info.device)
            with ExitStack() as stack:
                if j < len(items) - 1:  # DDP averages the gradients once, after the last micro-batch
                    for module in self.ddp:
                        stack.enter_context(module.no_sync())
                with self.autocast:
                    loss, stats = self.loss(batch, class_index)
                self.precision.backward(loss / accumulation if accumulation > 1 else loss)
            parts.append(stats)
        self.precision.step(self.optimizer)
        if self.precision.update():
            return None  # fp16 overflowed: the scaler skipped the step (training/precision.py)
        return mean_statistics(parts, self.info)

    def end_epoch(self, epoch: int, last: bool, seconds: float) -> dict[str, Any]:
        config = self.config
        epoch_lr = self.optimizer.param_groups[0]["lr"]  # the rate this epoch trained with
        self.scheduler.step()
        # every batch of an epoch is full (the loader drops none), and an epoch is never split by a resume
        utterances = self.steps_per_epoch * self.plan.global_batch
        extra: dict[str, Any] = {"lr": epoch_lr, "utterances_per_s": utterances / seconds}
        if self.info.is_main and ((epoch + 1) % config.eval_every == 0 or last):
            metrics = validate(self.enc, self.data, config, self.info.device)
            extra.update({f"val_{k}": v for k, v in metrics.items()})
            if selection_metric(metrics) > self.best:
                self.best, self.best_metrics = selection_metric(metrics), {"epoch": epoch + 1, **metrics}
                best = {
                    "speech_encoder": self.enc.speech.state_dict(),
                    "speech_args": self.enc.speech_args,
                    "image_encoder": trainable_state(self.enc.image),
                    "image_args": self.enc.image_args,
                    "image_weights": str(self.image_weights or config.image_weights),
                    "epoch": epoch + 1,
                    "metrics": metrics,
                }
                checkpoints.save("encoder", best, self.run_dir / checkpoints.ENCODER_BEST, {"encoder": as_dict(config)})
        return extra

    def record(self, step: int, epoch: int, means: dict[str, float], extra: dict[str, Any]) -> dict[str, Any]:
        lead = {k: extra[k] for k in ("lr", "utterances_per_s") if k in extra}
        rest = {k: v for k, v in extra.items() if k not in lead}
        return {"epoch": epoch + 1, **lead, **means, **rest, "step": step}

    def format(self, record: dict[str, Any]) -> str:
        parts = [f"epoch {record['epoch']}", f"loss {record.get('loss', float('nan')):.3f}",
                 f"{record.get('utterances_per_s', 0):.0f} utt/s"]  # fmt: skip
        for key in ("val_s2i_mAP", "val_s2i_R@1", "val_s2i_R@10", "val_i2s_R@10"):
            if key in record:
                parts.append(f"{key[4:]} {record[key]:.3f}")
        return " | ".join(parts)

    def state(self) -> dict[str, Any]:
        return {
            "speech_encoder": self.enc.speech.state_dict(),
            "image_encoder": trainable_state(self.enc.image),
            "classifier": self.classifier.state_dict() if self.classifier is not None else {},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "python_rng": list(random.getstate()),
            "best": self.best,
            "best_metrics": self.best_metrics,
            **({"scaler": self.precision.state_dict()} if self.precision.scaler is not None else {}),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        for module, key in zip(self.modules, ("speech_encoder", "image_encoder", "classifier")):
            module.load_state_dict(state[key], strict=key != "image_encoder")
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        random.setstate(_tuple(state["python_rng"]))
        self.best, self.best_metrics = state["best"], state["best_metrics"]
        self.precision.load_state_dict(state.get("scaler", {}))
        self._apply_optimisation_settings()

    def _apply_optimisation_settings(self) -> None:
        """The current config's rates, betas, weight decay and schedule replace those the state brought back.
        The rate is recomputed only when the schedule changed: a resume that changes nothing keeps its floats."""
        c, schedule = self.config, self.scheduler
        for group in self.optimizer.param_groups:
            group["betas"], group["weight_decay"] = tuple(c.betas), c.weight_decay
        if schedule.base_lrs == [c.lr] * len(schedule.base_lrs) and (schedule.step_size, schedule.gamma) == (
            c.lr_step_epochs,
            c.lr_gamma,
        ):
            return
        schedule.base_lrs = [c.lr] * len(schedule.base_lrs)
        schedule.step_size, schedule.gamma = c.lr_step_epochs, c.lr_gamma
        for group in self.optimizer.param_groups:  # StepLR's rate after the epochs done, as if it had always held
            group["initial_lr"] = c.lr
            group["lr"] = c.lr * c.lr_gamma ** (schedule.last_epoch // c.lr_step_epochs)
        schedule._last_lr = [group["lr"] for group in self.optimizer.param_groups]  # what get_last_lr() reports

    def resume_step(self, state: dict[str, Any], steps_per_epoch: int) -> int:
        if "step" not in state:  # saved before steps were counted: resume at the start of the next epoch
            return state["epoch"] * steps_per_epoch
        return int(state["step"])


def train_encoder(
    data_dir: str | Path,
    run_dir: str | Path,
    config: EncoderConfig,
    resume: bool = True,
    image_weights: str = "",
    log: Callable[[str], None] = print,
    allow_new_data: bool = False,
) -> dict[str, Any]:
    """Train, validate every `eval_every` epochs, keep the best; then (main process) write every utterance's
    embedding to RUN/embeddings.h5 and the test split's retrieval to RUN/test_retrieval.json. Returns the best
    validation metrics. The run folder is locked meanwhile; `allow_new_data` lets a run resume on another data
    folder."""
    data_dir, run_dir = Path(data_dir), Path(run_dir)
    info = init_distributed()
    try:
        with hold_run(run_dir, info, log):
            try:
                best = _train(data_dir, run_dir, config, info, resume, image_weights, log, allow_new_data)
            finally:
                cleanup()  # before the export, which runs on the main process alone
            if info.is_main:
                log(f"best validation: {best}")
                write_embeddings(run_dir, data_dir, image_weights, log)
            return best
    finally:
        cleanup()  # when the lock was refused


def _train(data_dir: Path, run_dir: Path, config: EncoderConfig, info: DistInfo, resume: bool, image_weights: str,
           log: Callable[[str], None], allow_new_data: bool) -> dict[str, Any]:  # fmt: skip
    kind = "Inception-v3 (ImageNet, frozen) + linear" if config.image_encoder == "inception_v3" else "small CNN"
    if info.is_main:
        log(f"image encoder: {kind} ({config.image_encoder}); embeddings {config.embed_dim}-d")
    task = EncoderTask(data_dir, run_dir, config, info, image_weights)
    schedule = Schedule(
        steps_per_epoch=task.steps_per_epoch,
        total_steps=config.epochs * task.steps_per_epoch,
        log_every=task.steps_per_epoch,  # one line per epoch, with the epoch's mean losses
        checkpoint_every=task.steps_per_epoch,
        time_budget_minutes=config.time_budget_minutes,
        resumable_mid_epoch=False,
    )
    record = {"data": str(data_dir), "encoder": as_dict(config), "scale": task.plan.record()}
    engine = Engine(run_dir, info, schedule, record, "encoder", log)
    engine.run(task, engine.resume(task, resume, allow_new_data))
    return task.best_metrics


def write_embeddings(run_dir: Path, data_dir: Path, image_weights: str, log: Callable[[str], None]) -> None:
    """RUN/embeddings.h5 from the best checkpoint and, with a test split, RUN/test_retrieval.json: the test
    split's retrieval, reported and never used for selection."""
    target = run_dir / "embeddings.h5"
    counts = export_embeddings(run_dir, data_dir, target, image_weights=image_weights)
    log(f"embeddings: {target} ({', '.join(f'{k} {v}' for k, v in counts.items())})")
    if "test" in counts:
        test = split_retrieval(target, "test")
        write_json(run_dir / TEST_RETRIEVAL, test)
        shown = ", ".join(f"{k} {test[k]:.3f}" for k in ("s2i_mAP", "s2i_R@10", "i2s_R@10") if k in test)
        log(f"test split retrieval: {shown} ({run_dir / TEST_RETRIEVAL})")


def _tuple(state: Any) -> Any:
    """random.setstate needs tuples where the checkpoint (weights_only) holds lists."""
    return tuple(_tuple(x) for x in state) if isinstance(state, list) else state
