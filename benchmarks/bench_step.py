"""One GAN training step of s2ikit against DF-GAN's official one, interleaved in one process, at 32-256 px.

Both steps are the same recipe: D phase (hinge on real/matching, 1/2 fake, 1/2 real/mismatched, plus MA-GP
2 * mean(||[grad_x, grad_s]||^6)), then G phase (-D(G(z, s), s)), Adam TTUR 1e-4 / 4e-4, betas (0.0, 0.9);
same batch, same ngf = ndf, same condition width (`--cond`), random inputs, no DAMSM and no EMA on either side.
DF-GAN's side is the training step of its `code/lib/modules.py::train`, written out here, around the networks of
its own `code/models/GAN.py` (NetG, NetD, NetC), loaded from the file the user points to; nothing of DF-GAN
ships with s2ikit. Get it with:  git clone https://github.com/tobran/DF-GAN  then
  --dfgan DF-GAN/code/models/GAN.py   (or the environment variable DFGAN_GAN_PY)
That file is imported, i.e. run as Python: point it only at a copy you trust. Without it, s2ikit's own
`gan.block = "dfgan"` ablation (DF-GAN's fusion in s2ikit's network) stands in for DF-GAN.
Repetitions alternate (s2ikit, DF-GAN, DF-GAN, s2ikit, ...) so that load on a shared machine hits both alike;
each column is the fastest of them (the step least disturbed by other processes: on a busy machine medians
swing by tens of percent from run to run, minima by a few). ratio = s2ikit s/step / DF-GAN s/step.
Usage: python benchmarks/bench_step.py [--dfgan PATH] [--rows 32:16:16 64:32:32 ...] [--reps 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from s2ikit.config import GANConfig
from s2ikit.core.factories import build_discriminator, build_generator, generator_args
from s2ikit.models.discriminator import Discriminator
from s2ikit.models.generator import Generator
from s2ikit.training.gan_loss import FusionS2iGanLoss

# resolution : ngf = ndf : batch. 256 px stays at batch 4 so that a CPU run takes minutes, not hours.
DEFAULT_ROWS = ("32:16:16", "64:16:16", "64:32:32", "128:32:8", "256:32:4")
HOW_TO_GET = (
    "DF-GAN's networks are not bundled; to time its official step: git clone https://github.com/tobran/DF-GAN "
    "and pass --dfgan DF-GAN/code/models/GAN.py (or set DFGAN_GAN_PY). Timing s2ikit's block=dfgan ablation instead."
)


def n_params(*modules: torch.nn.Module) -> int:
    return sum(p.numel() for m in modules for p in m.parameters())


def load_dfgan(path: str):
    """DF-GAN's code/models/GAN.py as a module (it imports only torch and numpy)."""
    spec = importlib.util.spec_from_file_location("dfgan_gan", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def s2ikit_models(config: GANConfig, cond: int) -> tuple[Generator, Discriminator]:
    """The networks `train-gan` builds from a GANConfig."""
    return build_generator(generator_args(config, cond)), build_discriminator(config, cond)


def s2ikit_step(config: GANConfig, cond: int, batch: int) -> tuple[Callable[[], float], str]:
    """s2ikit's training step: the phases of the train-gan loop, through FusionS2iGanLoss."""
    torch.manual_seed(0)
    G, D = s2ikit_models(config, cond)
    opt_g = torch.optim.Adam(G.parameters(), config.lr_g, betas=tuple(config.betas))
    opt_d = torch.optim.Adam(D.parameters(), config.lr_d, betas=tuple(config.betas))
    loss = FusionS2iGanLoss(G, D, None, config)
    size = config.image_size
    real = torch.rand(batch, 3, size, size) * 2 - 1
    speech = F.normalize(torch.randn(batch, cond), dim=1)
    labels = torch.zeros(batch, dtype=torch.long)

    def step() -> float:
        start = time.perf_counter()
        fake = loss.generate(speech, torch.randn(batch, config.z_dim))
        d_loss, _ = loss.discriminator_loss(real, speech, fake.images)
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        g_loss, _ = loss.generator_loss(fake, speech, labels)
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        return time.perf_counter() - start

    return step, f"{n_params(G) / 1e6:.2f}M / {n_params(D) / 1e6:.2f}M"


def dfgan_step(gan, size: int, nf: int, batch: int, cond: int, z_dim: int = 100) -> tuple[Callable[[], float], str]:
    """DF-GAN's code/lib/modules.py::train, one iteration, on its NetG / NetD / NetC (CPU: no .cuda())."""
    torch.manual_seed(0)
    netG, netD, netC = gan.NetG(nf, z_dim, cond, size, 3), gan.NetD(nf, size, 3), gan.NetC(nf, cond)
    optimizerG = torch.optim.Adam(netG.parameters(), lr=0.0001, betas=(0.0, 0.9))
    optimizerD = torch.optim.Adam(list(netD.parameters()) + list(netC.parameters()), lr=0.0004, betas=(0.0, 0.9))
    real = torch.rand(batch, 3, size, size) * 2 - 1
    sentence = F.normalize(torch.randn(batch, cond), dim=1)

    def step() -> float:
        start = time.perf_counter()
        imgs, sent_emb = real.clone().requires_grad_(), sentence.clone().requires_grad_()
        real_features = netD(imgs)
        pred_real = netC(real_features, sent_emb)
        errD_real = F.relu(1.0 - pred_real).mean()
        mis_features = torch.cat((real_features[1:], real_features[0:1]), dim=0)
        errD_mis = F.relu(1.0 + netC(mis_features, sent_emb)).mean()
        fake = netG(torch.randn(batch, z_dim), sent_emb)
        errD_fake = F.relu(1.0 + netC(netD(fake.detach()), sent_emb)).mean()
        grads = torch.autograd.grad(
            pred_real, (imgs, sent_emb), torch.ones_like(pred_real), retain_graph=True, create_graph=True
        )
        grad = torch.cat([g.view(g.size(0), -1) for g in grads], dim=1)
        errD_MAGP = 2.0 * torch.mean(torch.sqrt(torch.sum(grad**2, dim=1)) ** 6)
        errD = errD_real + (errD_fake + errD_mis) / 2.0 + errD_MAGP
        optimizerD.zero_grad()
        errD.backward()
        optimizerD.step()
        errG = -netC(netD(fake), sent_emb).mean()
        optimizerG.zero_grad()
        errG.backward()
        optimizerG.step()
        return time.perf_counter() - start

    return step, f"{n_params(netG) / 1e6:.2f}M / {n_params(netD, netC) / 1e6:.2f}M"


def interleaved(a: Callable[[], float], b: Callable[[], float], reps: int) -> tuple[float, float]:
    """Fastest seconds of `a` and `b` after one warm-up each, in the order a b b a a b ..."""
    a(), b()
    ta, tb = [], []
    for i in range(reps):
        first, second = (a, b) if i % 2 == 0 else (b, a)
        t1, t2 = first(), second()
        (ta, tb)[first is b].append(t1)
        (ta, tb)[second is b].append(t2)
    return min(ta), min(tb)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dfgan", default=os.environ.get("DFGAN_GAN_PY", ""), help="DF-GAN's code/models/GAN.py")
    parser.add_argument("--rows", nargs="+", default=list(DEFAULT_ROWS), help="resolution:ngf:batch (ngf = ndf)")
    parser.add_argument("--reps", type=int, default=3, help="timed steps per side and row, after one warm-up")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--cond", type=int, default=256, help="condition width on both sides (DF-GAN's 256)")
    parser.add_argument("--smm-hidden", type=int, default=GANConfig.smm_hidden, help="gan.smm_hidden (0 = channels)")
    parser.add_argument("--condition", default=GANConfig.condition, help="gan.condition: speech | noise+speech")
    parser.add_argument("--d-plan", default=GANConfig.d_plan, help="gan.d_plan: image | head")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    gan = None
    if args.dfgan:
        if not Path(args.dfgan).is_file():
            raise SystemExit(f"--dfgan {args.dfgan}: no such file (DF-GAN's code/models/GAN.py)")
        gan = load_dfgan(args.dfgan)
    else:
        print(HOW_TO_GET)
    other = "DF-GAN" if gan else "dfgan-block"
    other_params = f"{other} G/D+C params" if gan else f"{other} G/D params"
    base = GANConfig(damsm_weight=0.0, smm_hidden=args.smm_hidden, condition=args.condition, d_plan=args.d_plan)
    print(
        f"GAN training step, {args.threads} thread(s), fastest of {args.reps} interleaved steps, cond {args.cond}, "
        f"s2ikit smm_hidden {args.smm_hidden}, condition {args.condition}, d_plan {args.d_plan}"
    )
    header = (
        f"{'res':>4} | {'ngf=ndf':>7} | {'batch':>5} | {'s2ikit G/D params':>17} | {other_params:>22} | "
        f"{'s2ikit s/step':>13} | {other + ' s/step':>18} | {'ratio':>5}"
    )
    print(header)
    print("-" * len(header))
    for row in args.rows:
        size, nf, batch = (int(v) for v in row.split(":"))
        config = dataclasses.replace(base, image_size=size, ngf=nf, ndf=nf)
        ours, ours_params = s2ikit_step(config, args.cond, batch)
        if gan is not None:
            theirs, theirs_params = dfgan_step(gan, size, nf, batch, args.cond)
        else:
            ablation = dataclasses.replace(config, block="dfgan", smm_hidden=0, condition="noise+speech")
            theirs, theirs_params = s2ikit_step(ablation, args.cond, batch)
        t_ours, t_theirs = interleaved(ours, theirs, args.reps)
        print(
            f"{size:>4} | {nf:>7} | {batch:>5} | {ours_params:>17} | {theirs_params:>22} | "
            f"{t_ours:>13.3f} | {t_theirs:>18.3f} | {t_ours / t_theirs:>5.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
