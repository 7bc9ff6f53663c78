"""`s2ikit train-encoder`: pretrain the speech encoder against an image encoder (S2IGAN's recipe).

The loop schedules epochs, validation, checkpoints and the time budget; `EncoderLoss` owns the forward passes.
Run folder: config.json, metrics.jsonl, checkpoints/encoder-state.pt (resume: models, optimizer, scheduler,
RNG, epoch), checkpoints/encoder-best.pt (networks and the arguments that rebuild them, chosen on validation).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from s2ikit.config import EncoderConfig, LoaderConfig, as_dict
from s2ikit.data.loader import KeySelect, make_loader
from s2ikit.evaluation.retrieval import cross_modal_retrieval
from s2ikit.models.image_encoder import build_image_encoder, trainable_state
from s2ikit.models.speech_encoder import SpeechEncoder
from s2ikit.training import checkpoint
from s2ikit.training.augment import augment_images, check_symmetry, mask_speech
from s2ikit.training.distributed import DistInfo, barrier, broadcast_flag, cleanup, init_distributed
from s2ikit.training.encoder_data import EncoderData, load_encoder_data
from s2ikit.training.encoder_loss import EncoderLoss
from s2ikit.utils.atomic import write_json
from s2ikit.utils.errors import UserError
from s2ikit.utils.jsonl import append_jsonl

STATE, BEST = "checkpoints/encoder-state.pt", "checkpoints/encoder-best.pt"


@dataclass
class Encoders:
    speech: SpeechEncoder
    image: nn.Module
    speech_args: dict[str, Any]
    image_args: dict[str, Any]


def build_encoders(config: EncoderConfig, n_mels: int, image_weights: str = "") -> Encoders:
    speech_args = {
        "n_mels": n_mels,
        "embed_dim": config.embed_dim,
        "conv_channels": list(config.conv_channels),
        "rnn_layers": config.rnn_layers,
        "attention_hidden": config.attention_hidden,
        "dropout": config.dropout,
    }
    image_args = {"kind": config.image_encoder, "embed_dim": config.embed_dim, "cnn_width": config.cnn_width}
    try:
        image = build_image_encoder(**image_args, weights=image_weights or config.image_weights)
    except FileNotFoundError as e:
        raise UserError(str(e)) from None
    speech = SpeechEncoder(**{**speech_args, "conv_channels": tuple(speech_args["conv_channels"])})
    return Encoders(speech, image, speech_args, image_args)


def load_best_encoders(run_dir: str | Path, image_weights: str = "") -> tuple[Encoders, dict[str, Any]]:
    """The selected encoders of a run, rebuilt from the arguments stored beside their weights."""
    ckpt = checkpoint.load(Path(run_dir) / BEST)
    args = ckpt["speech_args"]
    speech = SpeechEncoder(**{**args, "conv_channels": tuple(args["conv_channels"])})
    speech.load_state_dict(ckpt["speech_encoder"])
    try:
        image = build_image_encoder(**ckpt["image_args"], weights=image_weights or ckpt.get("image_weights", ""))
    except FileNotFoundError as e:
        raise UserError(str(e)) from None
    missing, unexpected = image.load_state_dict(ckpt["image_encoder"], strict=False)
    if unexpected or any(not k.startswith("backbone.") for k in missing):
        raise UserError(f"{Path(run_dir) / BEST}: image encoder weights do not fit {ckpt['image_args']}")
    return Encoders(speech.eval(), image.eval(), ckpt["speech_args"], ckpt["image_args"]), ckpt


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


def validate(enc: Encoders, data: EncoderData, config: EncoderConfig, device: torch.device) -> dict[str, float]:
    """Speech<->image retrieval on the held-out training images: every caption against every image."""
    return embed_split(enc, data.root, "train", config.batch_size, device, KeySelect(data.val_keys, True)).retrieval()


def selection_metric(metrics: dict[str, float]) -> float:
    return metrics.get("s2i_mAP", metrics["s2i_R@10"])


def train_encoder(
    data_dir: str | Path,
    run_dir: str | Path,
    config: EncoderConfig,
    resume: bool = True,
    image_weights: str = "",
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train, validate every `eval_every` epochs, keep the best; returns the best validation metrics."""
    info = init_distributed()
    try:
        return _train(Path(data_dir), Path(run_dir), config, resume, image_weights, log, info)
    finally:
        cleanup()


def _train(data_dir, run_dir, config, resume, image_weights, log, info: DistInfo) -> dict[str, Any]:
    check_symmetry(config.image_augment, "encoder.image_augment")
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    data = load_encoder_data(data_dir, config.val_fraction, config.seed)
    enc = build_encoders(config, data.n_mels, image_weights)
    enc.speech.to(info.device), enc.image.to(info.device)
    classifier = None
    if config.distinctive_weight > 0 and data.class_index:
        classifier = nn.Linear(config.embed_dim, len(data.class_index)).to(info.device)
    modules = [m for m in (enc.speech, enc.image, classifier) if m is not None]
    params = [p for m in modules for p in m.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=config.lr, betas=tuple(config.betas), weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, config.lr_step_epochs, config.lr_gamma)
    start_epoch, best, best_metrics = 0, float("-inf"), {}
    state_path = run_dir / STATE
    if resume and state_path.is_file():
        state = checkpoint.load(state_path)
        for module, key in zip(modules, ("speech_encoder", "image_encoder", "classifier")):
            module.load_state_dict(state[key], strict=key != "image_encoder")
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        random.setstate(_tuple(state["python_rng"]))
        start_epoch, best, best_metrics = state["epoch"], state["best"], state["best_metrics"]
        log(f"resuming from {state_path} at epoch {start_epoch}")
    if info.is_main:
        write_json(run_dir / "config.json", {"data": str(data_dir), "encoder": as_dict(config)})
    wrap = (lambda m: DistributedDataParallel(m)) if info.world_size > 1 else (lambda m: m)
    loss_fn = EncoderLoss(
        wrap(enc.speech), wrap(enc.image), wrap(classifier) if classifier is not None else None,
        config.matching_scale, config.distinctive_weight,
    )  # fmt: skip
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if info.device.type == "cuda" else nullcontext()
    class_lookup = torch.full((max(data.class_index, default=0) + 2,), -1, dtype=torch.long)
    for cid, idx in data.class_index.items():
        class_lookup[cid] = idx
    started = time.monotonic()
    for epoch in range(start_epoch, config.epochs):
        # seeded per (epoch, rank): reproducible, and independent of where a resumed run starts
        augment_rng = torch.Generator().manual_seed(config.seed * 100_003 + epoch * 1_000 + info.rank)
        for m in modules:
            m.train()
        loader = make_loader(
            data.root,
            LoaderConfig(
                batch_size=config.batch_size, num_workers=config.num_workers, seed=config.seed * 100_003 + epoch
            ),
            KeySelect(data.fit_keys, True),
            num_samples=len(data.fit_keys),
        )
        totals, n_batches, n_utts, epoch_start = {}, 0, 0, time.monotonic()
        for batch in loader:
            batch["image"] = augment_images(batch["image"], config.image_augment, augment_rng)
            batch["mel"] = mask_speech(
                batch["mel"], batch["mel_lengths"], config.mask_mel_bins, config.mask_frames, augment_rng
            )
            batch = to_device(batch, info.device)
            with autocast:
                loss, stats = loss_fn(batch, class_lookup.to(info.device)[batch["class_id"]])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            for k, v in stats.items():
                totals[k] = totals.get(k, 0.0) + v
            n_batches += 1
            n_utts += len(batch["key"])
        epoch_lr = scheduler.get_last_lr()[0]  # the rate this epoch trained with
        scheduler.step()
        seconds = time.monotonic() - epoch_start
        out_of_time = bool(config.time_budget_minutes) and time.monotonic() - started > 60 * config.time_budget_minutes
        out_of_time = broadcast_flag(out_of_time, info)
        record = {
            "epoch": epoch + 1,
            "lr": epoch_lr,
            "utterances_per_s": n_utts * info.world_size / seconds,
        }
        record.update({k: v / max(n_batches, 1) for k, v in totals.items()})
        last = epoch + 1 == config.epochs or out_of_time
        if info.is_main and ((epoch + 1) % config.eval_every == 0 or last):
            metrics = validate(enc, data, config, info.device)
            record.update({f"val_{k}": v for k, v in metrics.items()})
            if selection_metric(metrics) > best:
                best, best_metrics = selection_metric(metrics), {"epoch": epoch + 1, **metrics}
                checkpoint.save(
                    {
                        "speech_encoder": enc.speech.state_dict(),
                        "speech_args": enc.speech_args,
                        "image_encoder": trainable_state(enc.image),
                        "image_args": enc.image_args,
                        "image_weights": str(image_weights or config.image_weights),
                        "epoch": epoch + 1,
                        "metrics": metrics,
                        "config": as_dict(config),
                    },
                    run_dir / BEST,
                )
        if info.is_main:
            append_jsonl(run_dir / "metrics.jsonl", record)
            log(_format(record))
            checkpoint.save(
                {
                    "speech_encoder": enc.speech.state_dict(),
                    "image_encoder": trainable_state(enc.image),
                    "classifier": classifier.state_dict() if classifier is not None else {},
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "torch_rng": torch.get_rng_state(),
                    "python_rng": list(random.getstate()),
                    "epoch": epoch + 1,
                    "best": best,
                    "best_metrics": best_metrics,
                },
                state_path,
            )
        barrier(info)
        if out_of_time:
            log(f"time budget of {config.time_budget_minutes} min reached after epoch {epoch + 1}")
            break
    return best_metrics


def _tuple(state: Any) -> Any:
    """random.setstate needs tuples where the checkpoint (weights_only) holds lists."""
    return tuple(_tuple(x) for x in state) if isinstance(state, list) else state


def _format(record: dict[str, Any]) -> str:
    parts = [f"epoch {record['epoch']}", f"loss {record.get('loss', float('nan')):.3f}",
             f"{record['utterances_per_s']:.0f} utt/s"]  # fmt: skip
    for key in ("val_s2i_mAP", "val_s2i_R@1", "val_s2i_R@10", "val_i2s_R@10"):
        if key in record:
            parts.append(f"{key[4:]} {record[key]:.3f}")
    return " | ".join(parts)
