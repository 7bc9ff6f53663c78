"""Fusion-S2iGan networks and objective: shapes, the paper's structure, WFM weights, MA-GP by finite differences."""

import pytest
import torch

from s2ikit.config import GANConfig
from s2ikit.models.discriminator import Discriminator
from s2ikit.models.fusion import VSFM, PixelAttention, SpeechModulation, WeightedFusion
from s2ikit.models.generator import Generator, channel_plan
from s2ikit.training.gan_loss import FusionS2iGanLoss, ma_gp


def test_channel_plan_is_anchored_at_the_output():
    assert channel_plan(256) == (8, 8, 8, 8, 4, 2, 1)  # seven dual-residual blocks at 256 px
    assert channel_plan(64) == (8, 8, 4, 2, 1)
    assert channel_plan(32) == (8, 4, 2, 1)
    with pytest.raises(ValueError):
        channel_plan(48)


@pytest.mark.parametrize("size", [32, 64])
def test_generator_and_discriminator_shapes(size):
    G = Generator(cond_dim=16, image_size=size, ngf=4)
    D = Discriminator(cond_dim=16, image_size=size, ndf=4)
    z, s = torch.randn(3, 100), torch.randn(3, 16)
    images = G(z, s)
    assert images.shape == (3, 3, size, size) and images.abs().max() <= 1
    assert len(G.blocks) == len(channel_plan(size)) and G.blocks[-1].conv2.out_channels == 4
    assert D.features(images).shape == (3, 16 * 4, 4, 4)  # (16 ndf, 4, 4): 1024 x 4 x 4 at ndf 64
    assert D(images, s).shape == (3,)
    real, mismatched = D(images, s, s.roll(1, 0))
    assert real.shape == mismatched.shape == (3,)


def test_discriminator_matches_the_paper_at_256():
    D = Discriminator(cond_dim=1024, image_size=256, ndf=64)
    assert [b.conv1.out_channels for b in D.blocks] == [64, 128, 256, 512, 1024, 1024]
    assert D.head[0].in_channels == 2048  # (1024 image + 1024 speech, 4, 4)


def test_modules_keep_the_feature_map_shape():
    x, s = torch.randn(2, 8, 5, 5), torch.randn(2, 12)
    assert PixelAttention(8).attention_map(x).shape == (2, 1, 5, 5)
    assert SpeechModulation(8, 12)(x, s).shape == x.shape
    for fusion in ("wfm", "add", "product"):
        for attention in ("pam", "none"):
            assert VSFM(8, 12, fusion, attention)(x, s).shape == x.shape


def test_wfm_weights_sum_to_one_per_channel():
    wfm = WeightedFusion(8)
    torch.nn.init.normal_(wfm.fc2.weight, std=3.0)
    a, b = torch.randn(4, 8, 3, 3), torch.randn(4, 8, 3, 3)
    w = wfm.weights(a, b)
    assert w.shape == (4, 2, 8)
    torch.testing.assert_close(w.sum(dim=1), torch.ones(4, 8))
    assert (w > 0).all() and w.std() > 0.05  # really data-dependent, not a constant 1/2
    expected = w[:, 0, :, None, None] * a + w[:, 1, :, None, None] * b
    torch.testing.assert_close(wfm(a, b), expected)


def test_smm_scales_and_shifts_per_channel():
    smm = SpeechModulation(3, 2, hidden=4)
    x, s = torch.ones(1, 3, 2, 2), torch.randn(1, 2)
    torch.testing.assert_close(smm(x, s), x)  # identity at initialisation
    torch.nn.init.normal_(smm.scale[-1].weight)
    scale = smm.scale(s)[0]
    torch.testing.assert_close(smm(x, s)[0, :, 0, 0], scale * 1 + smm.shift(s)[0])


def test_ma_gp_equals_finite_differences():
    torch.manual_seed(0)
    D = Discriminator(cond_dim=4, image_size=32, ndf=1).double()
    for block in D.blocks:
        block.gamma.data.fill_(0.5)
    x = torch.randn(2, 3, 32, 32, dtype=torch.double, requires_grad=True)
    s = torch.randn(2, 4, dtype=torch.double, requires_grad=True)
    penalty = ma_gp(D(x, s), x, s, weight=2.0, power=6.0)
    # central differences of D(x_i, s_i) along every input coordinate, all perturbations in one batch
    eps, expected = 1e-6, 0.0
    with torch.no_grad():
        for i in range(2):
            n_x, n_s = x[i].numel(), s.shape[1]
            basis_x = torch.eye(n_x, dtype=torch.double).view(n_x, *x.shape[1:]) * eps
            basis_s = torch.eye(n_s, dtype=torch.double) * eps
            xi, si = x[i].detach(), s[i].detach()
            gx = (D(xi + basis_x, si.expand(n_x, -1)) - D(xi - basis_x, si.expand(n_x, -1))) / (2 * eps)
            gs = (D(xi.expand(n_s, -1, -1, -1), si + basis_s) - D(xi.expand(n_s, -1, -1, -1), si - basis_s)) / (2 * eps)
            expected += torch.cat([gx, gs]).norm() ** 6
    assert float(penalty.detach()) == pytest.approx(2.0 * float(expected) / 2, rel=1e-4)


def test_loss_terms_are_finite_and_reach_the_right_networks():
    cfg = GANConfig(image_size=32, ngf=4, ndf=4, damsm_weight=0.1)
    G, D = Generator(16, 32, 4), Discriminator(16, 32, 4)
    from s2ikit.models.image_encoder import ConvImageEncoder

    enc = ConvImageEncoder(16, 4).eval().requires_grad_(False)
    loss = FusionS2iGanLoss(G, D, enc, cfg)
    real, s, z = (
        torch.rand(4, 3, 32, 32) * 2 - 1,
        torch.nn.functional.normalize(torch.randn(4, 16)),
        torch.randn(4, 100),
    )
    fake = loss.generate(s, z)
    d_loss, d_stats = loss.discriminator_loss(real, s, fake)
    d_loss.backward()
    assert all(p.grad is None for p in G.parameters())  # the D phase does not touch G
    assert d_stats["ma_gp"] > 0 and set(d_stats) >= {"d_hinge", "d_real", "d_fake"}
    D.zero_grad(set_to_none=True)
    g_loss, g_stats = loss.generator_loss(fake, s, torch.tensor([0, 1, 2, 3]))
    g_loss.backward()  # the same images' graph serves the G phase
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in G.parameters())
    assert all(p.grad is None for p in D.parameters())  # the G phase leaves D's gradients alone...
    assert all(p.requires_grad for p in D.parameters())  # ...and D trainable for its next phase
    assert "g_damsm" in g_stats


def test_fused_vsfm_equals_the_equations_step_by_step():
    torch.manual_seed(0)
    vsfm = VSFM(8, 12).train()
    for mlp in (vsfm.smm.scale, vsfm.smm.shift):
        torch.nn.init.normal_(mlp[-1].weight)
    torch.nn.init.normal_(vsfm.wfm.fc2.weight, std=2.0)
    x, s = torch.randn(3, 8, 6, 6), torch.randn(3, 12)
    fused = vsfm(x, s)
    f1 = vsfm.bn(x)  # eq. 7 (same batch statistics)
    expected = f1 + vsfm.wfm(vsfm.pam(f1), vsfm.smm(f1, s))  # eqs. 8-18 module by module
    torch.testing.assert_close(fused, expected, rtol=1e-5, atol=1e-5)


def test_translation_shifts_each_image_by_whole_pixels_and_passes_gradients():
    from s2ikit.core.augment import translate

    x = torch.randn(6, 3, 16, 16, requires_grad=True)
    assert translate(x, 0.0, None) is x
    out = translate(x, 0.125, torch.Generator().manual_seed(1))  # up to 2 px
    assert out.shape == x.shape
    for a, b in zip(x.detach(), out.detach()):
        matches = [
            (dy, dx)
            for dy in range(-2, 3)
            for dx in range(-2, 3)
            if torch.equal(b[:, max(dy, 0) : 16 + min(dy, 0), max(dx, 0) : 16 + min(dx, 0)],
                           a[:, max(-dy, 0) : 16 + min(-dy, 0), max(-dx, 0) : 16 + min(-dx, 0)])
        ]  # fmt: skip
        assert len(matches) == 1  # exactly one whole-pixel shift explains the output; the rest is zero fill
        dy, dx = matches[0]
        assert int((b == 0).all(dim=0).sum()) >= 16 * (abs(dy) + abs(dx)) - abs(dy * dx)
    out.sum().backward()
    assert x.grad.sum() > 0  # the pixels that stay in the frame get gradient 1


def _dihedral(x: torch.Tensor) -> list[torch.Tensor]:
    return [torch.rot90(f, k, dims=(-2, -1)) for f in (x, x.flip(-1)) for k in range(4)]


def test_real_augmentation_draws_a_symmetry_per_image():
    from s2ikit.core.augment import augment_real

    x = torch.randn(64, 3, 8, 8)
    assert augment_real(x, "none", torch.Generator()) is x
    for mode, group in (("flip", 2), ("dihedral", 8)):
        out = augment_real(x, mode, torch.Generator().manual_seed(0))
        seen = set()
        for a, b in zip(x, out):
            options = _dihedral(a) if mode == "dihedral" else [a, a.flip(-1)]
            hits = [i for i, t in enumerate(options) if torch.equal(t, b)]
            assert len(hits) == 1  # each output is exactly one transform of its own input
            seen.add(hits[0])
        assert len(seen) == group  # drawn per image: 64 images show every transform of the group
        torch.testing.assert_close(out, augment_real(x, mode, torch.Generator().manual_seed(0)))
    with pytest.raises(ValueError, match="real-image augmentation"):
        augment_real(x, "rotate", torch.Generator())


def test_speech_noise_perturbs_only_what_the_generator_sees():
    seen = []

    class Recording(Generator):
        def forward(self, z, s):
            seen.append(s.detach().clone())
            return super().forward(z, s)

    G, D = Recording(16, 32, 4), Discriminator(16, 32, 4)
    s, z = torch.nn.functional.normalize(torch.randn(4, 16)), torch.randn(4, 100)
    FusionS2iGanLoss(G, D, None, GANConfig(image_size=32, speech_noise=0.0)).generate(s, z)
    noisy = FusionS2iGanLoss(G, D, None, GANConfig(image_size=32, speech_noise=0.05))
    noisy.generate(s, z, torch.Generator().manual_seed(1))
    noisy.generate(s, z, torch.Generator().manual_seed(1))
    assert torch.equal(seen[0], s)  # off: the paper's G input
    assert torch.equal(seen[1], seen[2])  # a function of the step's generator: resumable runs replay it
    assert torch.allclose(seen[1].norm(dim=1), torch.ones(4))  # still on the unit sphere, like the encoder's output
    moved = (seen[1] - s).norm(dim=1)
    assert ((moved > 0.05 * 4 * 0.5) & (moved < 0.05 * 4 * 2)).all()  # ~ std * sqrt(16)
