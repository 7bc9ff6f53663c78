"""Host memory of the GAN's speech cache per training process: one table per process against one mapped file.

Two layouts of the same synthetic embeddings (`--utterances` x `--dim` float32, built in batches of 64 as the
encoder yields them; no data set and no encoder are needed):
  dict   every process holds every utterance's embedding, a dict of per-utterance tensors (the layout the cache
         had when each process computed all of them; on a GPU, those tensors lived in device memory);
  mapped the main process writes RUN/speech-cache.h5 once (training/speech_cache.py's `write_cache`), every
         process memory-maps it (`read_cache`) and gathers each batch's rows (`SpeechEmbeddings.rows`).
`--processes` processes run each layout at once and look up one epoch of random batches each, so every row is
touched. Each reports its peak RSS (VmHWM), which counts mapped file pages in every process that touched them,
and its PSS (proportional set size: a page shared by n processes counts 1/n to each), both less the process's
memory before the cache was built; and the bytes a GPU would hold (the whole table, or one batch). Ratios are
against the dict layout measured in the same run. The writer's transient peak (its computed rows before they are
written) is reported apart.
Usage: python benchmarks/bench_speech_cache.py [--utterances 100000] [--dim 1024] [--processes 2]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import tempfile
from pathlib import Path

BATCH = 64


def _status(field: str) -> float:
    """A /proc/self/status field (kB) in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def _pss() -> float:
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    raise KeyError("Pss")


def _batches(utterances: int, dim: int):
    """The synthetic encoder output: (keys, unit rows) per batch, the same in every process."""
    import numpy as np

    rng = np.random.default_rng(0)
    for start in range(0, utterances, BATCH):
        n = min(BATCH, utterances - start)
        rows = rng.standard_normal((n, dim), dtype=np.float32)
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)
        yield [(f"img{i // 2:07d}", i % 2) for i in range(start, start + n)], rows


def _lookups(keys: list, rank: int):
    """One epoch of random batches of keys (each process its own order)."""
    import numpy as np

    order = np.random.default_rng(rank + 1).permutation(len(keys))
    for start in range(0, len(order), BATCH):
        yield [keys[i] for i in order[start : start + BATCH]]


def _process(layout: str, path: str, utterances: int, dim: int, rank: int, start, out) -> None:
    import torch

    from s2ikit.training.speech_cache import SpeechEmbeddings, read_cache

    torch.set_num_threads(1)
    device = torch.device("cpu")  # stands in for the GPU: what the dict layout held there, it holds here
    start.wait()
    base_rss, base_pss = _status("VmRSS"), _pss()
    if layout == "dict":
        known: dict = {}
        for keys, rows in _batches(utterances, dim):
            known.update(zip(keys, torch.from_numpy(rows).to(device)))
        device_bytes = utterances * dim * 4  # every utterance's row, in every process
        for keys in _lookups(list(known), rank):
            batch = torch.stack([known[k] for k in keys])
    else:
        known_rows, table = read_cache(Path(path), {"synthetic": True})
        cache = SpeechEmbeddings.from_table(known_rows, table, device)
        for keys in _lookups(list(known_rows), rank):
            batch = cache.rows(keys)
        device_bytes = batch.numel() * batch.element_size()
    out.put((layout, rank, _status("VmHWM") - base_rss, _pss() - base_pss, device_bytes / 2**20))


def _write(path: str, utterances: int, dim: int, out) -> None:
    from s2ikit.training.speech_cache import write_cache

    base = _status("VmRSS")
    keys, parts = [], []
    for k, rows in _batches(utterances, dim):
        keys += k
        parts.append(rows)
    write_cache(Path(path), keys, parts, {"synthetic": True})
    out.put(("writer", 0, _status("VmHWM") - base, 0.0, 0.0))


def _run(target, arguments: list[tuple]) -> list[tuple]:
    ctx = mp.get_context("spawn")
    out, start = ctx.Queue(), ctx.Barrier(len(arguments))
    procs = [ctx.Process(target=target, args=(*a[:-1], start, out) if a[-1] == "barrier" else (*a, out))
             for a in arguments]  # fmt: skip
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
        if p.exitcode:
            raise SystemExit(f"a benchmark process failed (exit code {p.exitcode})")
    return sorted(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--utterances", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    n, d, p = args.utterances, args.dim, args.processes
    print(f"speech cache of {n} utterances x {d} float32 ({n * d * 4 / 2**20:.0f} MiB), {p} processes")
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "speech-cache.h5")
        rows = _run(_process, [("dict", path, n, d, r, "barrier") for r in range(p)])
        writer = _run(_write, [(path, n, d)])[0]
        rows += _run(_process, [("mapped", path, n, d, r, "barrier") for r in range(p)])
    old = {r[1]: r for r in rows if r[0] == "dict"}
    print(f"{'layout':8} {'rank':>4} {'peak RSS MiB':>13} {'x dict':>7} {'PSS MiB':>9} {'x dict':>7} "
          f"{'GPU MiB':>9} {'x dict':>8}")  # fmt: skip
    for layout, rank, rss, pss, gpu in rows:
        o = old[rank]
        print(f"{layout:8} {rank:>4} {rss:>13.0f} {rss / o[2]:>7.2f} {pss:>9.0f} {pss / o[3]:>7.2f} {gpu:>9.2f} "
              f"{gpu / o[4]:>8.4f}")  # fmt: skip
    print(f"writer (main process, once, while it writes): peak RSS {writer[2]:.0f} MiB")


if __name__ == "__main__":
    main()
