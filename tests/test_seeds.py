"""One seed helper: streams derived by hashing never coincide, and stay the same on every machine."""

import torch

from s2ikit.config import GANConfig
from s2ikit.training.gan import step_noise
from s2ikit.utils.seeds import derive_seed


def test_streams_steps_and_seeds_never_coincide():
    seeds = {derive_seed(seed, stream, step) for seed in (0, 1) for stream in ("gan/z", "gan/speech_noise",
             "gan/augment", "gan/loader") for step in range(200)}  # fmt: skip
    assert len(seeds) == 2 * 4 * 200
    assert derive_seed(0, "eval/z", 1, 0) != derive_seed(0, "eval/z", 0, 1)  # (row, k) is not (k, row)
    assert all(0 <= s < 2**63 for s in seeds)


def test_known_values_pin_the_derivation():
    # a change here changes every run's numbers: it must be a deliberate one
    assert derive_seed(0, "gan/z", 0) == derive_seed(0, "gan/z", 0)
    assert derive_seed(0, "gan/z", 0) == 1047235831264272437


def test_at_seed_zero_the_speech_noise_no_longer_replays_z():
    config = GANConfig(z_dim=8)
    z = step_noise(config, 5, 4, torch.device("cpu"))
    noise = torch.randn((4, 8), generator=torch.Generator().manual_seed(derive_seed(0, "gan/speech_noise", 5)))
    assert not torch.equal(z, noise)
