"""Model benchmarks on this machine's CPU (or CUDA when present), each configuration in a fresh process so that
peak memory (max RSS, or CUDA max allocated) belongs to it alone.

  GAN:     one G+D training step (D phase with MA-GP, then G phase) at 32, 64 and 128 px, and the ratio of the
           VSFM generator's step to the DF-GAN-block generator's step at the same size (the paper's fusion cost).
  Encoder: speech-encoder training throughput (utterances/s) and peak memory.
Usage: python benchmarks/bench_models.py [--sizes 32 64 128] [--batch 16] [--ngf 16] [--steps 5]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import time


def _peak_mb(device) -> float:
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _gan_setup(size: int, block: str, batch: int, ngf: int):
    import torch

    from s2ikit.config import GANConfig
    from s2ikit.models.discriminator import Discriminator
    from s2ikit.models.generator import Generator
    from s2ikit.training.gan_loss import FusionS2iGanLoss

    torch.manual_seed(0)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cfg = GANConfig(image_size=size, ngf=ngf, ndf=ngf, block=block, damsm_weight=0.0)
    G, D = Generator(256, size, ngf, block=block).to(device), Discriminator(256, size, ngf).to(device)
    opt_g = torch.optim.Adam(G.parameters(), 1e-4, betas=(0.0, 0.9))
    opt_d = torch.optim.Adam(D.parameters(), 4e-4, betas=(0.0, 0.9))
    loss = FusionS2iGanLoss(G, D, None, cfg)
    real = torch.rand(batch, 3, size, size, device=device) * 2 - 1
    s = torch.nn.functional.normalize(torch.randn(batch, 256, device=device), dim=1)
    labels = torch.zeros(batch, dtype=torch.long, device=device)

    def step() -> float:
        start = time.perf_counter()
        z = torch.randn(batch, 100, device=device)
        fake = loss.generate(s, z)
        d, _ = loss.discriminator_loss(real, s, fake)
        opt_d.zero_grad()
        d.backward()
        opt_d.step()
        g, _ = loss.generator_loss(fake, s, labels)
        opt_g.zero_grad()
        g.backward()
        opt_g.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    return step, device


def gan_peak(args: tuple) -> float:
    """Peak memory of a few steps of one configuration, alone in its process."""
    size, block, batch, ngf = args
    step, device = _gan_setup(size, block, batch, ngf)
    for _ in range(2):
        step()
    return _peak_mb(device)


def gan_times(args: tuple) -> tuple[float, float]:
    """Median step time of VSFM and DF-GAN, their steps interleaved in one process so drift hits both alike."""
    size, batch, ngf, steps = args
    vsfm, _ = _gan_setup(size, "vsfm", batch, ngf)
    dfgan, _ = _gan_setup(size, "dfgan", batch, ngf)
    vsfm(), dfgan()  # warm-up
    a, b = [], []
    for _ in range(steps):
        a.append(vsfm())
        b.append(dfgan())
    return sorted(a)[len(a) // 2], sorted(b)[len(b) // 2]


def encoder_throughput(args: tuple) -> tuple[float, float]:
    batch, steps, embed_dim = args
    import torch

    from s2ikit.models.image_encoder import ConvImageEncoder
    from s2ikit.models.speech_encoder import SpeechEncoder
    from s2ikit.training.encoder_loss import EncoderLoss

    torch.manual_seed(0)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    speech, image = SpeechEncoder(embed_dim=embed_dim).to(device), ConvImageEncoder(embed_dim).to(device)
    loss = EncoderLoss(speech, image, torch.nn.Linear(embed_dim, 48).to(device), 10.0, 1.0)
    params = list(speech.parameters()) + list(image.parameters())
    opt = torch.optim.Adam(params, 1e-3)
    lengths = torch.randint(180, 320, (batch,))
    batch_data = {
        "mel": torch.randn(batch, 320, 40, device=device),
        "mel_lengths": lengths.to(device),
        "image": torch.rand(batch, 3, 64, 64, device=device),
        "class_id": torch.arange(batch, device=device),
    }
    cls = torch.arange(batch, device=device) % 48
    start = None
    for i in range(steps + 1):
        if i == 1:
            start = time.perf_counter()
        value, _ = loss(batch_data, cls)
        opt.zero_grad()
        value.backward()
        opt.step()
    return batch * steps / (time.perf_counter() - start), _peak_mb(device)


def in_fresh_process(fn, args):
    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, (args,))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 128])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--ngf", type=int, default=16)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    print(f"GAN G+D step (batch {args.batch}, ngf = ndf = {args.ngf}, median of {args.steps} interleaved steps)")
    print(f"{'size':>5} {'VSFM s/step':>12} {'peak MB':>8} {'DF-GAN s/step':>14} {'peak MB':>8} {'VSFM/DF-GAN':>12}")
    for size in args.sizes:
        t_vsfm, t_dfgan = in_fresh_process(gan_times, (size, args.batch, args.ngf, args.steps))
        m_vsfm = in_fresh_process(gan_peak, (size, "vsfm", args.batch, args.ngf))
        m_dfgan = in_fresh_process(gan_peak, (size, "dfgan", args.batch, args.ngf))
        print(f"{size:>5} {t_vsfm:>12.3f} {m_vsfm:>8.0f} {t_dfgan:>14.3f} {m_dfgan:>8.0f} {t_vsfm / t_dfgan:>12.2f}")
    for embed_dim in (256, 1024):
        rate, peak = in_fresh_process(encoder_throughput, (32, 3, embed_dim))
        print(f"speech encoder training, embed {embed_dim}, batch 32: {rate:.1f} utterances/s, peak {peak:.0f} MB")


if __name__ == "__main__":
    main()
