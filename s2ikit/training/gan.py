"""`s2ikit train-gan`: Fusion-S2iGan training on prepared shards, conditioned by a frozen pretrained speech encoder.

The loop schedules phases (D then G each step), EMA, logging, sample grids, checkpoints and the time budget;
`FusionS2iGanLoss` owns the forward passes. Every step is reproducible from (seed, step): the loader is
re-seeded per epoch and z comes from a generator seeded by the step, so a resumed run replays exactly what an
uninterrupted one would have done. Gradients are averaged across ranks by hand after each phase (as
StyleGAN2-ADA does), because DDP wrappers cannot carry MA-GP's double backward.
Run folder: config.json, metrics.jsonl, samples/step-NNNNNNN.png, checkpoints/gan-state.pt (resume) and
checkpoints/generator.pt (EMA generator + the arguments that rebuild it, the frozen speech encoder, the feature
recipe and the TTS settings: everything `s2ikit generate` needs); with gan.keep_generators, also
checkpoints/generators/step-NNNNNNN.pt, each checkpoint's generator.pt, for `s2ikit select`.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from s2ikit.config import GANConfig, LoaderConfig, as_dict
from s2ikit.data.loader import make_loader
from s2ikit.evaluation.grid import save_grid
from s2ikit.models.discriminator import Discriminator
from s2ikit.models.generator import Generator
from s2ikit.training import checkpoint
from s2ikit.training.augment import augment_real, check_symmetry
from s2ikit.training.distributed import DistInfo, barrier, broadcast_flag, cleanup, init_distributed
from s2ikit.training.encoder import load_best_encoders, to_device
from s2ikit.training.gan_loss import FusionS2iGanLoss
from s2ikit.utils.atomic import write_json
from s2ikit.utils.errors import UserError
from s2ikit.utils.jsonl import append_jsonl

STATE, GENERATOR = "checkpoints/gan-state.pt", "checkpoints/generator.pt"
GENERATORS = Path("checkpoints") / "generators"  # every checkpoint's EMA generator, when gan.keep_generators


def generator_args(config: GANConfig, cond_dim: int) -> dict[str, Any]:
    keys = ("image_size", "ngf", "z_dim", "block", "modules", "fusion", "attention")
    return {"cond_dim": cond_dim, **{k: getattr(config, k) for k in keys}}


def step_noise(config: GANConfig, step: int, batch: int, device: torch.device) -> torch.Tensor:
    """z for `step`: a pure function of (seed, step), so resume needs no RNG state for it."""
    gen = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
    return torch.randn(batch, config.z_dim, generator=gen).to(device)


def ema_decay_at(config: GANConfig, step: int) -> float:
    """The EMA's decay after `step` steps: its window 1 / (1 - decay) grows as `ema_rampup` x the steps done."""
    window = max(1.0, config.ema_rampup * (step + 1))
    return min(config.ema_decay, 1.0 - 1.0 / window)


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    for p_ema, p in zip(ema.parameters(), model.parameters()):
        p_ema.lerp_(p, 1.0 - decay)
    for b_ema, b in zip(ema.buffers(), model.buffers()):
        b_ema.copy_(b)


def sync_gradients(module: nn.Module, info: DistInfo) -> None:
    if info.world_size == 1:
        return
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    flat = torch.cat([g.flatten() for g in grads])
    dist.all_reduce(flat)
    flat /= info.world_size
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def broadcast_parameters(module: nn.Module, info: DistInfo) -> None:
    if info.world_size > 1:
        for tensor in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(tensor.data, 0)


def train_gan(
    data_dir: str | Path,
    encoder_run: str | Path,
    run_dir: str | Path,
    config: GANConfig,
    resume: bool = True,
    max_steps: int | None = None,
    image_weights: str = "",
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train; returns the last logged metrics. `max_steps` stops early (tests, smoke runs)."""
    info = init_distributed()
    try:
        return _train(
            Path(data_dir), Path(encoder_run), Path(run_dir), config, resume, max_steps, image_weights, log, info
        )
    finally:
        cleanup()


def _train(data_dir, encoder_run, run_dir, config, resume, max_steps, image_weights, log, info) -> dict[str, Any]:
    check_symmetry(config.augment_real, "gan.augment_real")
    torch.manual_seed(config.seed)
    encoders, _ = load_best_encoders(encoder_run, image_weights)
    speech_encoder = encoders.speech.requires_grad_(False).eval().to(info.device)
    image_encoder = encoders.image.requires_grad_(False).eval().to(info.device)
    cond_dim = encoders.speech_args["embed_dim"]
    settings = json.loads((data_dir / "dataset.json").read_text())["settings"]
    data_size = settings["prepare"]["image_size"]
    # generator.pt carries the speech side too, so `s2ikit generate` needs nothing but that one file
    speech_side = {
        "speech_encoder": {k: v.cpu() for k, v in encoders.speech.state_dict().items()},
        "speech_args": encoders.speech_args,
        "features": settings["features"],
        "tts": settings.get("tts"),
        "data": str(data_dir.resolve()),  # absolute: evaluate and generate run from anywhere
    }
    if data_size != config.image_size:  # the encoder learnt at the shards' size: show it generated images at that size
        image_encoder = nn.Sequential(nn.Upsample(size=(data_size, data_size), mode="bilinear"), image_encoder)
    g_args = generator_args(config, cond_dim)
    G = Generator(**g_args).to(info.device)
    D = Discriminator(cond_dim, config.image_size, config.ndf).to(info.device)
    if info.device.type == "cuda" and config.channels_last:
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    broadcast_parameters(G, info), broadcast_parameters(D, info)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    opt_g = torch.optim.Adam(G.parameters(), lr=config.lr_g, betas=tuple(config.betas))
    opt_d = torch.optim.Adam(D.parameters(), lr=config.lr_d, betas=tuple(config.betas))
    sizes = json.loads((data_dir / "shards" / "train" / "sizes.json").read_text())
    steps_per_epoch = math.ceil(sum(sizes.values()) / (config.batch_size * info.world_size))
    step, last = 0, {}
    state_path = run_dir / STATE
    if resume and state_path.is_file():
        state = checkpoint.load(state_path)
        for module, key in ((G, "G"), (D, "D"), (G_ema, "G_ema"), (opt_g, "opt_g"), (opt_d, "opt_d")):
            module.load_state_dict(state[key])
        step = state["step"]
        log(f"resuming from {state_path} at step {step}")
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        config_record = {"data": str(data_dir), "encoder_run": str(encoder_run), "gan": as_dict(config)}
        write_json(run_dir / "config.json", config_record)
    loss = FusionS2iGanLoss(G, D, image_encoder, config)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if info.device.type == "cuda" else nullcontext()
    speech_embeddings = SpeechEmbeddings(speech_encoder, autocast, config.cache_speech)
    fixed = _fixed_samples(data_dir, speech_encoder, info.device) if info.is_main else None
    standing = _standing_speech(data_dir, speech_encoder, config, info.device) if info.is_main else None
    started, total_steps = time.monotonic(), max_steps or config.epochs * steps_per_epoch
    while step < total_steps:
        epoch, skip = divmod(step, steps_per_epoch)
        loader = make_loader(
            data_dir,
            LoaderConfig(
                batch_size=config.batch_size, num_workers=config.num_workers, seed=config.seed * 100_003 + epoch
            ),
        )
        for i, batch in enumerate(loader):
            if i < skip:
                continue  # replaying the interrupted epoch's order up to where it stopped
            if step >= total_steps:
                break
            batch = to_device(batch, info.device)
            speech = speech_embeddings(batch)
            real = batch["image"]
            if real.shape[-1] != config.image_size:  # e.g. 64 px shards feeding a 32 px model
                real = F.interpolate(real, size=(config.image_size, config.image_size), mode="area")
            z = step_noise(config, step, real.shape[0], info.device)
            rng = torch.Generator().manual_seed(config.seed * 7_919 + step)  # augmentation: also a function of step
            real = augment_real(real, config.augment_real, rng)
            if info.device.type == "cuda" and config.channels_last:
                real = real.contiguous(memory_format=torch.channels_last)
            with autocast:
                fake = loss.generate(speech, z, torch.Generator().manual_seed(config.seed * 104_729 + step))
                d_loss, d_stats = loss.discriminator_loss(real, speech, fake, rng)
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            sync_gradients(D, info)
            opt_d.step()
            with autocast:
                g_loss, g_stats = loss.generator_loss(fake, speech, batch["class_id"], rng)
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            sync_gradients(G, info)
            opt_g.step()
            update_ema(G_ema, G, ema_decay_at(config, step))
            step += 1
            stats = {**d_stats, **g_stats}
            bad = not all(math.isfinite(v) and abs(v) < config.divergence_threshold for v in stats.values())
            if broadcast_flag(bad, info):
                raise UserError(
                    f"training diverged at step {step} ({stats}); the last good checkpoint is {state_path}. "
                    "Lower gan.lr_d / gan.lr_g or raise gan.ma_gp_weight, then resume."
                )
            last = {"step": step, "epoch": epoch + 1, **stats}
            out_of_time = (
                bool(config.time_budget_minutes) and time.monotonic() - started > 60 * config.time_budget_minutes
            )
            out_of_time = broadcast_flag(out_of_time, info)
            done = step >= total_steps or out_of_time
            if info.is_main and (step % config.log_every == 0 or done):
                last["seconds"] = round(time.monotonic() - started, 1)
                append_jsonl(run_dir / "metrics.jsonl", last)
                log(" | ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in last.items()))
            if info.is_main and (step % config.sample_every == 0 or step % config.checkpoint_every == 0 or done):
                standing_statistics(G_ema, standing, config)
            if info.is_main and (step % config.sample_every == 0 or done):
                _sample_grid(G_ema, fixed, config, run_dir / "samples" / f"step-{step:07d}.png")
            if info.is_main and (step % config.checkpoint_every == 0 or done):
                _save(run_dir, G, D, G_ema, opt_g, opt_d, step, g_args, encoder_run, config, speech_side)
            barrier(info)
            if out_of_time:
                log(f"time budget of {config.time_budget_minutes} min reached at step {step}")
                return last
    return last


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


def _save(run_dir, G, D, G_ema, opt_g, opt_d, step, g_args, encoder_run, config, speech_side) -> None:
    state = {"G": G.state_dict(), "D": D.state_dict(), "G_ema": G_ema.state_dict(), "opt_g": opt_g.state_dict(),
             "opt_d": opt_d.state_dict(), "step": step}  # fmt: skip
    checkpoint.save(state, run_dir / STATE)
    network = {"generator": G_ema.state_dict(), "generator_args": g_args, "step": step, "config": as_dict(config),
               "encoder_run": str(encoder_run.resolve()), **speech_side}  # fmt: skip
    checkpoint.save(network, run_dir / GENERATOR)
    if config.keep_generators:
        checkpoint.save(network, run_dir / GENERATORS / f"step-{step:07d}.pt")


@torch.no_grad()
def _fixed_samples(data_dir: Path, speech_encoder: nn.Module, device: torch.device, n: int = 16) -> dict[str, Any]:
    """One caption from each of the first `n` classes met in the test split (else train): one grid per sample step."""
    split = "test" if (data_dir / "shards" / "test" / "sizes.json").is_file() else "train"
    mels, lengths, texts, classes = [], [], [], set()
    for batch in make_loader(data_dir, LoaderConfig(split=split, mode="test", batch_size=64)):
        for i, cls in enumerate(batch["class_id"].tolist()):
            if (cls not in classes or cls < 0) and len(texts) < n:
                classes.add(cls)
                mels.append(batch["mel"][i, : batch["mel_lengths"][i]])
                lengths.append(int(batch["mel_lengths"][i]))
                texts.append(batch["text"][i])
        if len(texts) == n:
            break
    mel = torch.nn.utils.rnn.pad_sequence(mels, batch_first=True).to(device)
    return {"speech": speech_encoder(mel, torch.tensor(lengths, device=device)).float(), "text": texts}


@torch.no_grad()
def _standing_speech(data_dir: Path, speech_encoder: nn.Module, config: GANConfig, device, batches: int = 32):
    """Speech embeddings of a fixed draw of training captions (the encoder is frozen: computed once)."""
    loader = make_loader(data_dir, LoaderConfig(batch_size=config.batch_size, seed=config.seed + 7_919))
    bank = []
    for batch in loader:
        bank.append(speech_encoder(batch["mel"].to(device), batch["mel_lengths"].to(device)).float())
        if len(bank) == batches:
            break
    return bank


@torch.no_grad()
def standing_statistics(G_ema: nn.Module, speech_bank: list[torch.Tensor], config: GANConfig) -> None:
    """Re-estimate the EMA generator's BatchNorm statistics with its own weights (BigGAN's "standing stats").

    The VSFMs' BatchNorm buffers are copied from the trained G each step, but they describe G's activations,
    not those of the averaged weights; sampling with them gives washed-out, mixed-colour images early in a run
    (measured on shapes at step 800: judge shape accuracy 26% with copied statistics, 31% re-estimated).
    """
    norms = [m for m in G_ema.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the bank
    G_ema.train()
    gen = torch.Generator().manual_seed(config.seed + 104_729)
    for speech in speech_bank:
        G_ema(torch.randn(speech.shape[0], config.z_dim, generator=gen).to(speech.device), speech)
    G_ema.eval()
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum


@torch.no_grad()
def _sample_grid(G_ema: nn.Module, fixed: dict[str, Any], config: GANConfig, path: Path) -> None:
    z = torch.randn(len(fixed["text"]), config.z_dim, generator=torch.Generator().manual_seed(config.seed))
    images = G_ema(z.to(fixed["speech"].device), fixed["speech"])
    save_grid(images, fixed["text"], path)
