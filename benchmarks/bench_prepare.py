"""Preparation throughput: the whole pipeline vs TTS alone on the same sentences, and the --workers speed-up.

Everything runs in this process tree on cold caches, so the ratios compare like with like:
  overhead = pipeline time (1 worker) / TTS-alone time        goal: < 1.10
  speed-up = pipeline time (1 worker) / pipeline time (2 workers)
Usage: python benchmarks/bench_prepare.py [--images-per-class N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from s2ikit.config import load_preset
from s2ikit.data.sources import get_source
from s2ikit.preparation.prepare import RunOptions, prepare
from s2ikit.preparation.steps import PrepareContext, synthesis_params
from s2ikit.tts import load_backend


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images-per-class", type=int, default=4, help="48 classes x this many images")
    parser.add_argument("--shard-size", type=int, default=16, help="images per unit of work (balances workers)")
    args = parser.parse_args()
    preset = load_preset(
        "shapes",
        {"shapes": {"images_per_class": args.images_per_class}, "prepare": {"shard_size": args.shard_size}},
    )
    records = get_source("shapes", preset, None).index()
    jobs = {}  # distinct (sentence, rate): what the content cache makes the pipeline synthesize
    for r in records:
        for i, c in enumerate(r.captions):
            params = synthesis_params(preset, r.key, i)
            jobs[(c.text, params)] = None
    captions = sum(len(r.captions) for r in records)

    tts = load_backend(preset.tts)
    tts.synthesize("warm up", next(iter(jobs))[1])
    started = time.perf_counter()
    for text, params in jobs:
        tts.synthesize(text, params)
    tts_seconds = time.perf_counter() - started

    timings = {}
    for workers in (1, 2):
        with tempfile.TemporaryDirectory() as tmp:
            ctx = PrepareContext(Path(tmp, "out"), "shapes", preset, None, Path(tmp, "cache"))
            started = time.perf_counter()
            prepare(ctx, RunOptions(workers=workers))
            timings[workers] = time.perf_counter() - started

    print(f"{len(records)} images, {captions} captions, {len(jobs)} distinct utterances synthesized")
    print(f"TTS alone:            {tts_seconds:7.1f} s  {captions / tts_seconds:7.1f} captions/s")
    for workers, seconds in timings.items():
        print(f"pipeline, workers={workers}:  {seconds:7.1f} s  {captions / seconds:7.1f} captions/s")
    print(f"pipeline / TTS alone (1 worker): {timings[1] / tts_seconds:.3f}  (goal < 1.10)")
    print(f"--workers 2 speed-up:            {timings[1] / timings[2]:.2f}x")


if __name__ == "__main__":
    main()
