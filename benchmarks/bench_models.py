"""Speech-encoder training throughput (utterances/s) and peak memory on this machine's CPU (or CUDA when
present), each configuration in a fresh process so that peak memory (max RSS, or CUDA max allocated) belongs to
it alone. The GAN step is timed by bench_step.py (against DF-GAN) and bench_pipeline.py (memory).
Usage: python benchmarks/bench_models.py [--batch 32] [--steps 3]
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
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    print(f"speech-encoder training (batch {args.batch}, {args.steps} steps after one warm-up)")
    print(f"{'embed':>5} | {'utterances/s':>12} | {'peak MB':>8}")
    for embed_dim in (256, 1024):
        rate, peak = in_fresh_process(encoder_throughput, (args.batch, args.steps, embed_dim))
        print(f"{embed_dim:>5} | {rate:>12.1f} | {peak:>8.0f}", flush=True)


if __name__ == "__main__":
    main()
