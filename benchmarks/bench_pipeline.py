"""Around the GAN step: can the loader feed it, how fast is `generate`, how much memory does a step take.

  loader:   samples/s of the training loader (data/loader.py, mode train, batch 32) on 256 px JPEG shards, in
            this process and with one worker process, against the samples/s a 64 px GAN step at batch 32
            consumes here (the CUB preset's model with ndf = ngf = 32 as in bench_step.py's 64 px row, no
            DAMSM). ratio = loader / GAN; goal >= 10 per worker.
  generate: one wav (3 s) -> four 256 px images on CPU after warm-up, split into log-mel, speech encoder and
            generator (the CUB preset's encoder and generator, random weights), in fp32 and in bf16 (`generate
            --bf16`). goal <= 0.5 s.
  memory:   peak RSS of that 64 px, batch 32 GAN step, in a fresh process, and its growth over the RSS before
            the first step.
The shards come from `--data` (a `s2ikit prepare` output at 256 px) or are made here with the project's own
preparation: `shapes` at 256 px JPEG, a few images per class, into a temporary folder (TTS through the usual
cache, so a second run synthesizes nothing).
Usage: python benchmarks/bench_pipeline.py [--data DIR] [--only loader generate memory] [--threads N]
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing as mp
import resource
import statistics
import tempfile
import time
import wave
from pathlib import Path

import numpy as np
import torch

from s2ikit.config import LoaderConfig, load_preset
from s2ikit.core import factories
from s2ikit.models.generator import Generator

GAN_BATCH, GAN_SIZE, GAN_NDF = 32, 64, 32  # the step whose consumption the loader must outpace


def cub_gan(image_size: int, **changes):
    """The CUB preset's GAN settings at `image_size`, DAMSM off (its Inception-v3 would dominate a CPU step)."""
    preset = load_preset("cub")
    return dataclasses.replace(preset.gan, image_size=image_size, damsm_weight=0.0, **changes), preset


def build_generator(config, cond: int) -> Generator:
    return factories.build_generator(factories.generator_args(config, cond))


def gan_step(image_size: int, batch: int):
    """One train-gan step (D phase with MA-GP, G phase, Adam) on random inputs, as a closure (bench_step's)."""
    from bench_step import s2ikit_step

    config, preset = cub_gan(image_size, ndf=GAN_NDF)
    step, _ = s2ikit_step(config, preset.encoder.embed_dim, batch)
    return step, config


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def step_memory(args: tuple[int, int, int]) -> tuple[float, float]:
    """(peak RSS, peak minus the RSS before the first step), MB, of two steps alone in this process."""
    image_size, batch, threads = args
    torch.set_num_threads(threads)
    step, _ = gan_step(image_size, batch)
    before = _rss_mb()
    step(), step()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return peak, peak - before


def prepared_data(tmp: Path) -> Path:
    from s2ikit.preparation.prepare import RunOptions, prepare
    from s2ikit.preparation.steps import PrepareContext
    from s2ikit.tts.cache import default_cache_dir

    overrides = {
        "prepare": {"image_size": 256, "image_format": "jpg", "shard_size": 32},
        "shapes": {"images_per_class": 2},
    }
    preset = load_preset("shapes", overrides)
    out = tmp / "shapes-256-jpg"
    prepare(PrepareContext(out, "shapes", preset, None, default_cache_dir()), RunOptions(workers=1))
    return out


def loader_rate(data: Path, workers: int, batches: int, warmup: int = 3) -> tuple[float, int]:
    """Samples/s of the training loader after `warmup` batches (worker start, shuffle buffer), and the side."""
    from s2ikit.data.loader import make_loader

    config = LoaderConfig(batch_size=GAN_BATCH, num_workers=workers, mode="train", seed=0)
    loader = make_loader(data, config, num_samples=GAN_BATCH * (batches + warmup) * max(1, workers))
    it = iter(loader)
    for _ in range(warmup):
        side = next(it)["image"].shape[-1]
    started = time.perf_counter()
    for _ in range(batches):
        next(it)
    return GAN_BATCH * batches / (time.perf_counter() - started), side


def bench_loader(data: Path, batches: int, steps: int) -> None:
    step, config = gan_step(GAN_SIZE, GAN_BATCH)
    step()
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    consumed = GAN_BATCH / statistics.median(times)
    print(
        f"\nloader vs GAN consumption (batch {GAN_BATCH}; GAN: {GAN_SIZE} px, ngf {config.ngf}, ndf {config.ndf}, "
        f"smm_hidden {config.smm_hidden}, {torch.get_num_threads()} threads, median of {steps} steps)"
    )
    print(f"{'source':<28} | {'image px':>8} | {'samples/s':>9} | {'ratio to GAN':>12}")
    print(f"{'GAN step (' + f'{statistics.median(times):.2f} s)':<28} | {GAN_SIZE:>8} | {consumed:>9.1f} | {1:>12.1f}")
    for workers in (0, 1):
        rate, side = loader_rate(data, workers, batches)
        name = f"loader, in process ({torch.get_num_threads()} thr.)" if workers == 0 else "loader, 1 worker process"
        print(f"{name:<28} | {side:>8} | {rate:>9.1f} | {rate / consumed:>12.1f}", flush=True)
    print("goal: ratio >= 10 for one worker")


def write_wav(path: Path, seconds: float = 3.0, rate: int = 22050) -> None:
    """A voice-like test signal: a gliding harmonic tone with noise, 16-bit mono."""
    t = np.arange(int(seconds * rate)) / rate
    f0 = 120 + 40 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    signal = sum(np.sin(k * phase) / k for k in range(1, 8)) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    signal = 0.3 * signal / np.abs(signal).max() + 0.01 * np.random.default_rng(0).standard_normal(t.size)
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1), f.setsampwidth(2), f.setframerate(rate)
        f.writeframes((np.clip(signal, -1, 1) * 32767).astype("<i2").tobytes())


def bench_generate(tmp: Path, repeats: int) -> None:
    from s2ikit.audio.speech import wav_log_mel
    from s2ikit.core.inference import GeneratorBundle, embed_speech, generate_images
    from s2ikit.models.speech_encoder import SpeechEncoder

    config, preset = cub_gan(256)
    enc = preset.encoder
    torch.manual_seed(0)
    speech = SpeechEncoder(
        preset.features.n_mels, enc.embed_dim, tuple(enc.conv_channels), rnn_layers=enc.rnn_layers,
        attention_hidden=enc.attention_hidden,
    )  # fmt: skip
    bundle = GeneratorBundle(
        build_generator(config, enc.embed_dim).eval(), speech.eval(), preset.features, None, tmp, {}
    )
    wav = tmp / "caption.wav"
    write_wav(wav)
    default_threads = torch.get_num_threads()
    columns = {}  # (precision, threads) -> stage -> seconds of each timed call
    for precision in ("fp32", "bf16"):
        bundle.use_precision(precision)
        for threads in sorted({1, default_threads}):
            torch.set_num_threads(threads)
            parts: dict[str, list[float]] = {
                "log-mel": [],
                "speech encoder": [],
                "generator (4 images)": [],
                "total": [],
            }
            for i in range(repeats + 1):
                t0 = time.perf_counter()
                mel = wav_log_mel(wav, bundle.features)
                t1 = time.perf_counter()
                embedding = embed_speech(bundle.speech_encoder, [mel], bundle.device)
                t2 = time.perf_counter()
                images = generate_images(bundle, embedding, num=4, seed=0)
                t3 = time.perf_counter()
                if i:  # the first call is the warm-up (numba, allocator, oneDNN kernels)
                    for name, seconds in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t3 - t0)):
                        parts[name].append(seconds)
            assert images.shape == (1, 4, 3, 256, 256)
            columns[precision, threads] = parts
    torch.set_num_threads(default_threads)
    print(
        f"\ngenerate: one 3 s wav -> four 256 px images (CUB preset: embed {enc.embed_dim}, ngf {config.ngf}, "
        f"smm_hidden {config.smm_hidden}; seconds, median / fastest of {repeats} calls; bf16 = `generate --bf16`)"
    )
    print(f"{'stage':<22} | " + " | ".join(f"{f'{p}, {t} thread(s)':>21}" for p, t in columns))
    for name in parts:
        cells = [f"{statistics.median(c[name]):>7.3f} / {min(c[name]):.3f}" for c in columns.values()]
        print(f"{name:<22} | " + " | ".join(f"{cell:>21}" for cell in cells))
    print("goal: total (median) <= 0.5 s")


def bench_memory() -> None:
    with mp.get_context("spawn").Pool(1) as pool:
        peak, growth = pool.apply(step_memory, ((GAN_SIZE, GAN_BATCH, torch.get_num_threads()),))
    config, _ = cub_gan(GAN_SIZE, ndf=GAN_NDF)
    print(
        f"\nmemory of a GAN step ({GAN_SIZE} px, batch {GAN_BATCH}, ngf {config.ngf}, ndf {config.ndf}, "
        f"smm_hidden {config.smm_hidden}, fresh process)"
    )
    print(f"{'measure':<34} | {'MB':>7}")
    print(f"{'peak RSS of the process':<34} | {peak:>7.0f}")
    print(f"{'peak RSS - RSS before the step':<34} | {growth:>7.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="a `s2ikit prepare` output at 256 px (default: make one here)")
    parser.add_argument("--only", nargs="+", default=["loader", "generate", "memory"])
    parser.add_argument("--batches", type=int, default=20, help="timed loader batches")
    parser.add_argument("--steps", type=int, default=2, help="timed GAN steps")
    parser.add_argument("--repeats", type=int, default=5, help="timed generate calls")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if "loader" in args.only:
            data = args.data or prepared_data(tmp)
            bench_loader(data, args.batches, args.steps)
        if "generate" in args.only:
            bench_generate(tmp, args.repeats)
        if "memory" in args.only:
            bench_memory()


if __name__ == "__main__":
    main()
