"""A shapes-preset GAN step with the preset's D (head plan, ndf 8) against the VGG-style BatchNorm D, timed in
one process, interleaved, fastest of --reps (benchmarks/bench_step.py's method; no DAMSM term, random inputs).
Needs docs/experiments/patches/shapes-gan-vgg-d.patch applied. Run from the repository root:
    python docs/experiments/d_plan_step_cost.py --reps 10
"""

import argparse
import dataclasses
import sys

import torch

sys.path.insert(0, "benchmarks")
from bench_step import interleaved, s2ikit_step  # noqa: E402

from s2ikit.config import load_preset  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--reps", type=int, default=10)
parser.add_argument("--threads", type=int, default=1)
args = parser.parse_args()
torch.set_num_threads(args.threads)
preset = dataclasses.replace(load_preset("shapes").gan, damsm_weight=0.0)
anchor, _ = s2ikit_step(preset, 256, preset.batch_size)
print(f"shapes preset step, batch {preset.batch_size}, {args.threads} thread(s); ratio = variant / preset's D")
for ndf in (8, 16):
    variant, params = s2ikit_step(dataclasses.replace(preset, d_plan="vgg", ndf=ndf), 256, preset.batch_size)
    t_anchor, t_variant = interleaved(anchor, variant, args.reps)
    ratio = t_variant / t_anchor
    print(f"vgg ndf {ndf:>2} (G/D {params}): {t_variant:.3f} s against {t_anchor:.3f} s, ratio {ratio:.2f}")
