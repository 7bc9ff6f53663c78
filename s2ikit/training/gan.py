"""`s2ikit train-gan`: Fusion-S2iGan training on prepared shards, conditioned by a frozen pretrained speech encoder.

`GANTask` supplies the engine (training/engine.py) with the step's phases (D then G, `FusionS2iGanLoss` owning
the forward passes), the EMA update and the snapshots. Every step is reproducible from (seed, step): the loader
is re-seeded per epoch and z, the augmentation and the speech noise come from generators seeded by the step.
Run folder: config.json, metrics.jsonl, status.json, samples/step-NNNNNNN.png, checkpoints/gan-state.pt (resume)
and checkpoints/generator.pt (the `generator` checkpoint `s2ikit generate` needs, see core/checkpoints.py); with
gan.keep_generators, also checkpoints/generators/step-NNNNNNN.pt, each checkpoint's generator, for `s2ikit select`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from s2ikit.config import GANConfig, LoaderConfig, as_dict
from s2ikit.core import checkpoints
from s2ikit.core.augment import augment_real
from s2ikit.core.embeddings import to_device
from s2ikit.core.factories import (
    GAN_MODEL_SETTINGS,
    build_discriminator,
    build_generator,
    generator_args,
    load_encoders,
)
from s2ikit.core.grid import save_grid
from s2ikit.data.dataset_info import read_dataset
from s2ikit.data.loader import make_loader
from s2ikit.data.shards import has_split
from s2ikit.training.distributed import (
    DistInfo,
    broadcast_parameters,
    cleanup,
    init_distributed,
    mean_statistics,
    sync_gradients,
)
from s2ikit.training.ema import ema_decay_at, standing_statistics, update_ema
from s2ikit.training.engine import Engine, Schedule, Task
from s2ikit.training.gan_loss import FusionS2iGanLoss
from s2ikit.training.precision import Precision
from s2ikit.training.run_lock import hold_run
from s2ikit.training.scale import BatchPlan, plan_batches
from s2ikit.training.speech_cache import CACHE_FILE, SpeechEmbeddings
from s2ikit.utils.seeds import derive_seed


def step_noise(config: GANConfig, step: int, batch: int, device: torch.device) -> torch.Tensor:
    """z for `step`: a pure function of (seed, step), so resume needs no RNG state for it."""
    gen = torch.Generator().manual_seed(derive_seed(config.seed, "gan/z", step))
    return torch.randn(batch, config.z_dim, generator=gen).to(device)


class GANTask(Task):
    kind, state_file, model_settings = "gan-state", checkpoints.GAN_STATE, GAN_MODEL_SETTINGS

    def __init__(self, data_dir: Path, encoder_run: Path, run_dir: Path, config: GANConfig, info: DistInfo,
                 image_weights: str):  # fmt: skip
        self.data_dir, self.encoder_run, self.run_dir, self.config, self.info = (
            data_dir, encoder_run, run_dir, config, info
        )  # fmt: skip
        self.plan: BatchPlan = plan_batches("gan", config.batch_size, config.batch_per_process, info.world_size,
                                            info.rank)  # fmt: skip
        torch.manual_seed(config.seed)
        encoders, _ = load_encoders(encoder_run, image_weights)
        self.speech_encoder = encoders.speech.requires_grad_(False).eval().to(info.device)
        image_encoder = encoders.image.requires_grad_(False).eval().to(info.device)
        cond_dim = encoders.speech_args["embed_dim"]
        dataset = read_dataset(data_dir)
        # generator.pt carries the speech side too, so `s2ikit generate` needs nothing but that one file
        self.speech_side = {
            "speech_encoder": {k: v.cpu() for k, v in encoders.speech.state_dict().items()},
            "speech_args": encoders.speech_args,
            "features": dataset.settings["features"],
            "tts": dataset.settings.get("tts"),
            "data": str(data_dir.resolve()),  # absolute: evaluate and generate run from anywhere
        }
        if dataset.image_size != config.image_size:  # the encoder learnt at the shards' size: show it that size
            size = (dataset.image_size, dataset.image_size)
            image_encoder = nn.Sequential(nn.Upsample(size=size, mode="bilinear"), image_encoder)
        self.g_args = generator_args(config, cond_dim)
        self.G = build_generator(self.g_args).to(info.device)
        self.D = build_discriminator(config, cond_dim).to(info.device)
        self.channels_last = info.device.type == "cuda" and config.channels_last
        if self.channels_last:
            self.G, self.D = self.G.to(memory_format=torch.channels_last), self.D.to(memory_format=torch.channels_last)
        broadcast_parameters(self.G, info), broadcast_parameters(self.D, info)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=config.lr_g, betas=tuple(config.betas))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=config.lr_d, betas=tuple(config.betas))
        self.loss = FusionS2iGanLoss(self.G, self.D, image_encoder, config)
        self.precision = Precision(config.precision, info.device, config.tf32)
        self.autocast = self.precision.autocast()
        self.speech: SpeechEmbeddings | None = None  # before the first step, once the run folder is accepted
        self.fixed = self.standing = None

    def loader_config(self, epoch: int) -> LoaderConfig:
        c = self.config
        return LoaderConfig(
            batch_size=self.plan.per_process, num_workers=c.num_workers, seed=derive_seed(c.seed, "gan/loader", epoch)
        )

    def steps_per_epoch(self) -> int:
        return make_loader(self.data_dir, self.loader_config(0), stream=(0, self.plan.slots)).num_batches

    def _seed(self, stream: str, step: int, slot: int) -> int:
        """A per-step stream of `slot`; with one slot, the seed a run without slots has always used."""
        index = (step,) if self.plan.slots == 1 else (step, slot, self.plan.slots)
        return derive_seed(self.config.seed, stream, *index)

    def before_first_step(self, step: int) -> None:
        """The speech cache (every rank; the main rank writes RUN/speech-cache.h5 unless it is there already), the
        fixed captions of the sample grids and the standing-statistics bank (main rank)."""
        self.speech = SpeechEmbeddings(
            self.speech_encoder, self.autocast, self.info.device, self.data_dir if self.config.cache_speech else None,
            cache_file=self.run_dir / CACHE_FILE, precision=self.precision.name, writer=self.info.is_main,
        )  # fmt: skip
        if self.info.is_main:
            self.fixed = _fixed_samples(self.data_dir, self.speech_encoder, self.info.device)
            self.standing = _standing_speech(self.data_dir, self.speech_encoder, self.config, self.info.device)

    def batches(self, epoch: int) -> Iterable[Any]:
        """This process's micro-batches of each step, one per slot (training/scale.py)."""
        config, slots = self.loader_config(epoch), self.plan.slots
        return zip(*(make_loader(self.data_dir, config, stream=(slot, slots)) for slot in self.plan.my_slots))

    def train_step(self, batches: tuple[dict[str, Any], ...], step: int) -> dict[str, torch.Tensor] | None:
        """D's phase over every micro-batch, one D update, then G's phase likewise. With one micro-batch, G's
        phase reuses the D phase's images and their graph; with several, each is drawn again from the same
        inputs (the same images) rather than keeping every graph alive, which accumulation is there to avoid."""
        config, device, plan = self.config, self.info.device, self.plan
        z_all = step_noise(config, step, plan.global_batch, device)
        self.opt_d.zero_grad(set_to_none=True)
        parts, inputs = [], []
        for slot, batch in zip(plan.my_slots, batches):
            speech = self.speech(batch)  # from the host batch: the cache is looked up by key, with no device sync
            batch = to_device(batch, device)
            real = batch["image"]
            if real.shape[-1] != config.image_size:  # e.g. 64 px shards feeding a 32 px model
                real = F.interpolate(real, size=(config.image_size, config.image_size), mode="area")
            z = z_all[plan.rows(slot)]
            rng = torch.Generator().manual_seed(self._seed("gan/augment", step, slot))
            real = augment_real(real, config.augment_real, rng)
            if self.channels_last:
                real = real.contiguous(memory_format=torch.channels_last)
            with self.autocast:
                noise = torch.Generator().manual_seed(self._seed("gan/speech_noise", step, slot))
                fake = self.loss.generate(speech, z, noise)
                d_loss, d_stats = self.loss.discriminator_loss(real, speech, fake.images, rng,
                                                               self.precision.penalty_scale())  # fmt: skip
            self.precision.backward(d_loss)  # summed over the micro-batches; sync_gradients divides once
            parts.append(d_stats)
            inputs.append((slot, speech, z, batch["class_id"], rng, fake if plan.accumulation == 1 else None))
            del d_loss
        sync_gradients(self.D, self.info, plan.accumulation)
        self.precision.step(self.opt_d)
        self.opt_g.zero_grad(set_to_none=True)
        for j, (slot, speech, z, class_id, rng, fake) in enumerate(inputs):
            with self.autocast:
                if fake is None:
                    noise = torch.Generator().manual_seed(self._seed("gan/speech_noise", step, slot))
                    fake = self.loss.generate(speech, z, noise)
                g_loss, g_stats = self.loss.generator_loss(fake, speech, class_id, rng)
            self.precision.backward(g_loss)
            parts[j] = {**parts[j], **g_stats}
            del fake, g_loss
        inputs.clear()
        sync_gradients(self.G, self.info, plan.accumulation)
        self.precision.step(self.opt_g)
        if self.precision.update():
            return None  # fp16 overflowed: the scaler skipped the step (training/precision.py)
        return mean_statistics(parts, self.info)

    def after_step(self, step: int) -> None:
        update_ema(self.G_ema, self.G, ema_decay_at(self.config.ema_decay, self.config.ema_rampup, step))

    def snapshot(self, step: int, grid: bool) -> None:
        z_seed = derive_seed(self.config.seed, "gan/standing_z")
        standing_statistics(self.G_ema, self.standing, self.config.z_dim, z_seed)
        if grid:
            _sample_grid(self.G_ema, self.fixed, self.config, self.run_dir / "samples" / f"step-{step:07d}.png")

    def on_checkpoint(self, step: int, stopped: dict[str, Any] | None) -> None:
        network = {"generator": self.G_ema.state_dict(), "generator_args": self.g_args, "step": step,
                   "encoder_run": str(self.encoder_run.resolve()), "stopped": stopped, **self.speech_side}  # fmt: skip
        config = {"gan": as_dict(self.config)}
        checkpoints.save("generator", network, self.run_dir / checkpoints.GENERATOR, config)
        if self.config.keep_generators:
            checkpoints.save("generator", network, self.run_dir / checkpoints.kept_generator(step), config)

    def state(self) -> dict[str, Any]:
        return {"G": self.G.state_dict(), "D": self.D.state_dict(), "G_ema": self.G_ema.state_dict(),
                "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
                "loss": self.loss.state_dict(), **self._scaler_state()}  # fmt: skip

    def _scaler_state(self) -> dict[str, Any]:
        """fp16's loss scale (no key without a scaler: an fp32 state is what it always was)."""
        scaler = self.precision.state_dict()
        return {"scaler": scaler} if scaler else {}

    def load_state(self, state: dict[str, Any]) -> None:
        for module, key in ((self.G, "G"), (self.D, "D"), (self.G_ema, "G_ema"), (self.opt_g, "opt_g"),
                            (self.opt_d, "opt_d")):  # fmt: skip
            module.load_state_dict(state[key])
        self.loss.load_state_dict(state.get("loss", {}), self.info.device)  # saved before the loss had state: {}
        self.precision.load_state_dict(state.get("scaler", {}))
        # the optimisers' states bring back the rates they were saved with: a resume's settings replace them
        for optimizer, lr in ((self.opt_g, self.config.lr_g), (self.opt_d, self.config.lr_d)):
            for group in optimizer.param_groups:
                group["lr"], group["betas"] = lr, tuple(self.config.betas)


def train_gan(
    data_dir: str | Path,
    encoder_run: str | Path,
    run_dir: str | Path,
    config: GANConfig,
    resume: bool = True,
    max_steps: int | None = None,
    image_weights: str = "",
    log: Callable[[str], None] = print,
    allow_new_data: bool = False,
) -> dict[str, Any]:
    """Train; returns how the run ended (reason, step, total_steps). `max_steps` ends the schedule early.
    The run folder is locked while it trains; `allow_new_data` lets a run resume on another data folder."""
    data_dir, encoder_run, run_dir = Path(data_dir), Path(encoder_run), Path(run_dir)
    info = init_distributed()
    try:
        with hold_run(run_dir, info, log):
            return _train(data_dir, encoder_run, run_dir, config, info, resume, max_steps, image_weights, log,
                          allow_new_data)  # fmt: skip
    finally:
        cleanup()


def _train(
    data_dir: Path,
    encoder_run: Path,
    run_dir: Path,
    config: GANConfig,
    info: DistInfo,
    resume: bool,
    max_steps: int | None,
    image_weights: str,
    log: Callable[[str], None],
    allow_new_data: bool,
) -> dict[str, Any]:
    task = GANTask(data_dir, encoder_run, run_dir, config, info, image_weights)
    steps_per_epoch = task.steps_per_epoch()
    schedule = Schedule(
        steps_per_epoch=steps_per_epoch,
        total_steps=max_steps or config.epochs * steps_per_epoch,
        log_every=config.log_every,
        checkpoint_every=config.checkpoint_every,
        snapshot_every=config.sample_every,
        time_budget_minutes=config.time_budget_minutes,
        divergence_threshold=config.divergence_threshold,
    )
    record = {"data": str(data_dir), "encoder_run": str(encoder_run), "gan": as_dict(config),
              "scale": task.plan.record()}  # fmt: skip
    engine = Engine(run_dir, info, schedule, record, "gan", log)
    return engine.run(task, engine.resume(task, resume, allow_new_data))


@torch.no_grad()
def _fixed_samples(data_dir: Path, speech_encoder: nn.Module, device: torch.device, n: int = 16) -> dict[str, Any]:
    """One caption from each of the first `n` classes met in the test split (else train): one grid per sample step."""
    split = "test" if has_split(data_dir, "test") else "train"
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
    seed = derive_seed(config.seed, "gan/standing_speech")
    loader = make_loader(data_dir, LoaderConfig(batch_size=config.batch_size, seed=seed))
    bank = []
    for batch in loader:
        bank.append(speech_encoder(batch["mel"].to(device), batch["mel_lengths"].to(device)).float())
        if len(bank) == batches:
            break
    return bank


@torch.no_grad()
def _sample_grid(G_ema: nn.Module, fixed: dict[str, Any], config: GANConfig, path: Path) -> None:
    gen = torch.Generator().manual_seed(derive_seed(config.seed, "gan/sample_z"))
    z = torch.randn(len(fixed["text"]), config.z_dim, generator=gen)
    images = G_ema(z.to(fixed["speech"].device), fixed["speech"])
    save_grid(images, fixed["text"], path)
