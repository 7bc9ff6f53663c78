"""The speech encoder's speaker and channel augmentations: shapes and lengths, determinism from the generator,
identity (and no random draw) when off."""

from __future__ import annotations

import pytest
import torch

from s2ikit.core.augment import add_noise, mask_speech, stretch_time, warp_mel


def batch(lengths=(50, 30, 12), bins=40) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor(lengths)
    mel = torch.randn(len(lengths), int(lengths.max()), bins, generator=torch.Generator().manual_seed(1))
    mel[torch.arange(mel.shape[1])[None, :] >= lengths[:, None]] = 0  # the loader's zero padding
    return mel, lengths


def rng(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def state_after(fn) -> torch.Tensor:
    """The generator's state after `fn(generator)`: equal to a fresh one's when fn drew nothing."""
    g = rng()
    fn(g)
    return g.get_state()


@pytest.mark.parametrize(
    "augment",
    [
        lambda m, n, g: warp_mel(m, n, 0.0, g),
        lambda m, n, g: stretch_time(m, n, 0.0, g)[0],
        lambda m, n, g: add_noise(m, n, 0.0, g),
    ],
    ids=["warp_mel", "stretch_time", "add_noise"],
)
def test_off_is_the_identity_and_draws_nothing(augment):
    mel, lengths = batch()
    assert torch.equal(augment(mel, lengths, rng()), mel)
    assert torch.equal(state_after(lambda g: augment(mel, lengths, g)), rng().get_state())


def test_off_leaves_the_masks_draws_as_they_were():
    mel, lengths = batch()
    alone = mask_speech(mel, lengths, 5, 10, rng())
    g = rng()
    masked = mask_speech(mel, lengths, 5, 10, g)
    masked = add_noise(stretch_time(warp_mel(masked, lengths, 0.0, g), lengths, 0.0, g)[0], lengths, 0.0, g)
    assert torch.equal(masked, alone)


def test_warp_keeps_shape_and_padding_and_moves_the_spectrum():
    mel, lengths = batch()
    out = warp_mel(mel, lengths, 0.2, rng())
    assert out.shape == mel.shape
    assert torch.equal(out[1, 30:], torch.zeros_like(out[1, 30:]))  # padding stays zero
    assert not torch.allclose(out, mel)
    # a ramp over the bins warped by a: bin k reads k * a, so every row's ramp has slope a in [0.8, 1.2]
    ramp = torch.arange(40.0).expand(2, 5, 40).clone()
    slopes = warp_mel(ramp, torch.tensor([5, 5]), 0.2, rng())[:, 0, 1]
    assert ((slopes >= 0.8) & (slopes <= 1.2)).all() and slopes[0] != slopes[1]


def test_stretch_updates_lengths_and_keeps_the_ends():
    mel, lengths = batch()
    out, new = stretch_time(mel, lengths, 0.3, rng())
    assert new.shape == lengths.shape and new.dtype == lengths.dtype
    ratio = new.double() / lengths.double()
    assert ((ratio >= 0.7 - 0.05) & (ratio <= 1.3 + 0.05)).all() and not torch.equal(new, lengths)
    assert out.shape == (3, int(new.max()), 40)
    for row in range(3):
        n, length = int(new[row]), int(lengths[row])
        assert torch.allclose(out[row, 0], mel[row, 0]) and torch.allclose(out[row, n - 1], mel[row, length - 1])
        assert torch.equal(out[row, n:], torch.zeros_like(out[row, n:]))


def test_stretch_of_a_one_frame_utterance():
    mel, lengths = batch((1, 4))
    out, new = stretch_time(mel, lengths, 0.5, rng())
    assert (new >= 1).all() and out.shape[1] == int(new.max())


def test_noise_only_on_real_frames_at_a_bounded_level():
    mel, lengths = batch(bins=40)
    out = add_noise(mel, lengths, 0.5, rng())
    delta = out - mel
    assert torch.equal(delta[2, 12:], torch.zeros_like(delta[2, 12:]))
    stds = torch.stack([delta[i, : int(lengths[i])].std() for i in range(3)])
    assert (stds > 0).all() and (stds < 0.6).all()


@pytest.mark.parametrize(
    "augment",
    [
        lambda m, n, g: warp_mel(m, n, 0.1, g),
        lambda m, n, g: stretch_time(m, n, 0.1, g)[0],
        lambda m, n, g: add_noise(m, n, 0.3, g),
    ],
    ids=["warp_mel", "stretch_time", "add_noise"],
)
def test_the_generator_decides(augment):
    mel, lengths = batch()
    assert torch.equal(augment(mel, lengths, rng(3)), augment(mel, lengths, rng(3)))
    assert not torch.equal(augment(mel, lengths, rng(3)), augment(mel, lengths, rng(4)))
