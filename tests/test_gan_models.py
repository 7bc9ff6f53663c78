"""Fusion-S2iGan networks and objective: shapes, the paper's structure, WFM weights, MA-GP by finite differences."""

import pytest
import torch
import torch.nn.functional as F

from s2ikit.config import GANConfig
from s2ikit.models.discriminator import Discriminator, DownBlock
from s2ikit.models.fusion import VSFM, PixelAttention, SpeechModulation, WeightedFusion
from s2ikit.models.generator import Generator, channel_plan
from s2ikit.training.gan_loss import FusionS2iGanLoss, Generated, ma_gp


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
    assert D.features(images).shape == (3, D.feature_channels, 4, 4)
    assert D(images, s).shape == (3,)
    real, mismatched = D(images, s, s.roll(1, 0))
    assert real.shape == mismatched.shape == (3,)


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_the_paper_model_at_256_px_is_pinned():
    # the CUB preset's model (gan.ngf 32, ndf 64, 1024-d speech, SMM width 256), built by the constructors' defaults
    G, D = Generator(), Discriminator()
    assert [(b.conv1.in_channels, b.conv1.out_channels) for b in G.blocks] == [
        (256, 256), (256, 256), (256, 256), (256, 256), (256, 128), (128, 64), (64, 32)
    ]  # fmt: skip
    assert [b.fuse1.smm.scale[0].out_features for b in G.blocks] == [256] * 7
    assert G.blocks[0].fuse1.smm.scale[0].in_features == 1024
    assert D.stem.out_channels == 64
    assert [b.conv1.out_channels for b in D.blocks] == [64, 128, 256, 512, 1024, 1024]
    assert D.head[0].in_channels == 2048  # (1024 image + 1024 speech, 4, 4)
    assert _count(G) == 15_702_005 and _count(D) == 53_059_207
    # at 256 px both discriminator plans are the paper's
    assert _count(Discriminator(plan="head")) == 53_059_207
    assert _count(Generator(smm_hidden=256, condition="speech")) == 15_702_005
    # and the paper presets build exactly that model (the shapes preset's z-in-every-block is its own)
    from s2ikit.config import load_preset
    from s2ikit.core.factories import build_discriminator, build_generator, generator_args

    for name in ("cub", "oxford"):
        gan = load_preset(name).gan
        G_p, D_p = build_generator(generator_args(gan, 1024)), build_discriminator(gan, 1024)
        assert str(G_p) == str(G) and str(D_p) == str(D) and (_count(G_p), _count(D_p)) == (_count(G), _count(D))


def test_discriminator_plans_below_256_px():
    image, head = Discriminator(16, 32, 8, plan="image"), Discriminator(16, 32, 8, plan="head")
    assert image.stem.out_channels == 8  # ndf channels at full resolution, doubling as the map shrinks
    assert [b.conv1.out_channels for b in image.blocks] == [8, 16, 32] and image.feature_channels == 32
    assert head.stem.out_channels == 64  # the 4x4 end of the paper's plan: 8 ndf at 32 x 32
    assert [b.conv1.out_channels for b in head.blocks] == [64, 128, 128] and head.feature_channels == 128
    assert [b.conv1.out_channels for b in Discriminator(16, 64, 8).blocks] == [8, 16, 32, 64]
    with pytest.raises(ValueError, match="image|head"):
        Discriminator(16, 32, 8, plan="middle")


def test_down_block_pools_before_its_shortcut_without_changing_the_result():
    block = DownBlock(4, 8)
    block.gamma.data.fill_(0.7)
    x = torch.randn(2, 4, 8, 8)
    h = F.leaky_relu(block.conv2(F.leaky_relu(block.conv1(x), 0.2)), 0.2)
    torch.testing.assert_close(block(x), F.avg_pool2d(block.shortcut(x), 2) + 0.7 * h)  # DF-GAN's order


def test_smm_width_follows_the_channels_when_zero():
    G = Generator(cond_dim=16, image_size=32, ngf=4, smm_hidden=0)
    for block in G.blocks:
        for fuse in (block.fuse1, block.fuse2):
            assert fuse.smm.scale[0].out_features == fuse.smm.scale[-1].out_features == fuse.bn.num_features
    dfgan = Generator(cond_dim=16, image_size=32, ngf=4, block="dfgan", smm_hidden=0)
    assert dfgan.blocks[1].fuse1.affine1.shift[0].out_features == 32  # DF-GAN's Affine: hidden = channels
    assert Generator(cond_dim=16, image_size=32, ngf=4, smm_hidden=24).blocks[3].fuse2.smm.shift[0].out_features == 24


@pytest.mark.parametrize("condition", ["speech", "noise+speech"])
def test_noise_reaches_every_block_only_with_noise_plus_speech(condition):
    torch.manual_seed(0)
    G = Generator(cond_dim=16, image_size=32, ngf=4, z_dim=8, condition=condition).eval()
    torch.nn.init.zeros_(G.fc.weight), torch.nn.init.constant_(G.fc.bias, 0.3)  # z no longer enters through FC
    for module in G.modules():
        if isinstance(module, SpeechModulation):
            torch.nn.init.normal_(module.scale[-1].weight), torch.nn.init.normal_(module.shift[-1].weight)
    s = torch.randn(2, 16)
    a, b = G(torch.randn(2, 8), s), G(torch.randn(2, 8), s)
    assert G.blocks[0].fuse1.smm.scale[0].in_features == (24 if condition == "noise+speech" else 16)
    assert (a - b).abs().max() > 1e-3 if condition == "noise+speech" else torch.equal(a, b)
    with pytest.raises(ValueError, match="condition"):
        Generator(cond_dim=16, image_size=32, ngf=4, condition="noise")


def test_modules_keep_the_feature_map_shape():
    x, s = torch.randn(2, 8, 5, 5), torch.randn(2, 12)
    assert PixelAttention(8).attention_map(x).shape == (2, 1, 5, 5)
    assert SpeechModulation(8, 12)(x, s).shape == x.shape
    for fusion in ("wfm", "add", "product"):
        for attention in ("pam", "none"):
            assert VSFM(8, 12, fusion, attention)(x, s).shape == x.shape


def test_pam_is_eq_9():
    pam = PixelAttention(16).train()
    x = torch.randn(3, 16, 6, 6)
    expected = torch.sigmoid(pam.out(F.relu(pam.bn(pam.conv(x)))))  # eq. 9 with the module's own 1x1 conv
    torch.testing.assert_close(pam.attention_map(x), expected)
    torch.testing.assert_close(pam(x), x * expected)  # eq. 10


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
    d_loss, d_stats = loss.discriminator_loss(real, s, fake.images)
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


def test_mode_seeking_makes_g_answer_other_z_with_other_images():
    def spread_after_training(weight: float) -> float:
        torch.manual_seed(0)
        cfg = GANConfig(image_size=32, ngf=4, ndf=4, damsm_weight=0, mode_seeking_weight=weight, lr_g=1e-3)
        G, D = Generator(16, 32, 4), Discriminator(16, 32, 4)
        loss, opt = FusionS2iGanLoss(G, D, None, cfg), torch.optim.Adam(G.parameters(), 1e-3, betas=(0.0, 0.9))
        s = F.normalize(torch.randn(1, 16), dim=1).expand(8, -1)  # one caption, eight z
        rng = torch.Generator().manual_seed(0)
        for _ in range(20):
            g_loss, g_stats = loss.generator_loss(loss.generate(s, torch.randn(8, 100)), s, torch.zeros(8), rng)
            opt.zero_grad(set_to_none=True)
            g_loss.backward()
            opt.step()
        assert ("g_mode_seeking" in g_stats) == (weight > 0)
        with torch.no_grad():
            images = G.eval()(torch.randn(8, 100), s)
        return float(images.std(dim=0).mean())

    assert spread_after_training(1.0) > 2 * spread_after_training(0.0)  # measured: 0.41 against 0.11


def test_lecam_keeps_d_scores_of_real_and_fake_images_from_drifting_apart():
    def gap_after_training(weight: float) -> float:
        torch.manual_seed(0)
        cfg = GANConfig(image_size=32, ngf=4, ndf=4, damsm_weight=0, lecam_weight=weight)
        G, D = Generator(16, 32, 4), Discriminator(16, 32, 4)
        loss, opt = FusionS2iGanLoss(G, D, None, cfg), torch.optim.Adam(D.parameters(), 1e-3, betas=(0.0, 0.9))
        real, s = torch.rand(8, 3, 32, 32) * 2 - 1, F.normalize(torch.randn(8, 16), dim=1)
        fake = loss.generate(s, torch.randn(8, 100)).images.detach()
        for _ in range(30):  # D alone, on one fixed batch: the regime of a D that memorises a small data set
            d_loss, d_stats = loss.discriminator_loss(real, s, fake)
            opt.zero_grad(set_to_none=True)
            d_loss.backward()
            opt.step()
        assert ("d_lecam" in d_stats) == (weight > 0) and (loss.anchors is not None) == (weight > 0)
        return float(d_stats["d_real"] - d_stats["d_fake"])

    assert gap_after_training(1.0) < 0.8 * gap_after_training(0.0)  # measured: 0.40 against 2.15


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


def test_matching_augmentation_shows_the_encoder_one_symmetry_of_each_generated_image():
    seen = []

    class Recording(torch.nn.Module):
        def forward(self, images):
            seen.append(images.detach().clone())
            return images.flatten(1)[:, :16]

    G, D = Generator(16, 32, 4), Discriminator(16, 32, 4)
    s, fake = torch.nn.functional.normalize(torch.randn(16, 16)), torch.randn(16, 3, 32, 32, requires_grad=True)
    drawn = Generated(fake, torch.randn(16, 100), s)
    ids = torch.arange(16)
    for mode in ("none", "dihedral"):
        cfg = GANConfig(image_size=32, ngf=4, ndf=4, damsm_weight=1.0, augment_matching=mode)
        loss, _ = FusionS2iGanLoss(G, D, Recording(), cfg).generator_loss(
            drawn, s, ids, torch.Generator().manual_seed(0)
        )
        view = seen[-1]
        if mode == "none":
            assert torch.equal(view, fake.detach())
        else:
            hits = [[i for i, t in enumerate(_dihedral(a.detach())) if torch.equal(t, b)] for a, b in zip(fake, view)]
            assert all(len(h) == 1 for h in hits) and len({h[0] for h in hits}) > 1  # a transform per image
        fake.grad = None
        loss.backward()
        assert fake.grad.abs().sum() > 0  # the matching gradient reaches G through the transform


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


def test_output_symmetry_draws_each_pose_of_one_drawing_as_z_picks_it():
    torch.manual_seed(0)
    plain = Generator(cond_dim=16, image_size=32, ngf=4, z_dim=8).eval()
    for mode, group in (("flip", 2), ("dihedral", 8)):
        posed = Generator(cond_dim=16, image_size=32, ngf=4, z_dim=8, output_symmetry=mode).eval()
        posed.load_state_dict(plain.state_dict())  # the same weights: the setting adds no parameter
        z, s = torch.randn(400, 8), F.normalize(torch.randn(400, 16), dim=1)
        with torch.no_grad():
            drawn, out = plain(z, s), posed(z, s)
        poses = []
        for a, b in zip(drawn, out):
            options = _dihedral(a) if mode == "dihedral" else [a, a.flip(-1)]
            hits = [i for i, t in enumerate(options) if torch.equal(t, b)]
            assert len(hits) == 1  # each image is exactly one symmetry of what the network drew
            poses.append(hits[0])
        counts = torch.bincount(torch.tensor(poses), minlength=group)
        assert len(counts) == group and counts.min() > 400 / group / 2  # every pose, about equally often
        z2 = torch.randn(400, 8)
        z2[:, 0] = z[:, 0]
        with torch.no_grad():  # the pose is z's first component alone: the same one gives the same pose
            again = [torch.equal(p, q) for p, q in zip(posed(z2, s), posed.pose(plain(z2, s), z))]
        assert all(again)
    with pytest.raises(ValueError, match="output_symmetry"):
        Generator(cond_dim=16, image_size=32, ngf=4, output_symmetry="rotate")


def test_mode_seeking_gives_no_credit_for_the_pose_alone():
    torch.manual_seed(0)
    cfg = GANConfig(image_size=32, ngf=4, ndf=4, damsm_weight=0, mode_seeking_weight=1.0, output_symmetry="dihedral")
    G = Generator(16, 32, 4, output_symmetry=cfg.output_symmetry)
    torch.nn.init.zeros_(G.fc.weight)  # a network that ignores z: every z draws one picture, in z's pose
    loss = FusionS2iGanLoss(G, Discriminator(16, 32, 4), None, cfg)
    s = F.normalize(torch.randn(1, 16), dim=1).expand(16, -1)
    fake = loss.generate(s, torch.randn(16, 100))
    assert (fake.images - fake.images[:1]).abs().amax() > 0.1  # the poses differ...
    _, stats = loss.generator_loss(fake, s, torch.zeros(16), torch.Generator().manual_seed(0))
    assert stats["g_mode_seeking"] < 1e-6  # ...but the term sees that z changes nothing else


def test_d_residual_init_decides_whether_d_starts_as_a_linear_map_of_the_pooled_image():
    from s2ikit.core.factories import build_discriminator

    torch.manual_seed(0)
    a, b = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)

    def nonlinearity(D: Discriminator) -> float:  # 0 for a map that is linear in the image (up to its bias)
        f = D.features
        return (f(a + b) - f(a) - f(b) + f(torch.zeros_like(a))).abs().max().item()

    off = Discriminator(16, 32, 8, plan="head")  # DF-GAN's start: every residual branch multiplied by 0
    assert [blk.gamma.item() for blk in off.blocks] == [0.0, 0.0, 0.0] and nonlinearity(off) < 1e-4
    on = build_discriminator(GANConfig(image_size=32, ndf=8, d_plan="head", d_residual_init=1.0), 16)
    assert [blk.gamma.item() for blk in on.blocks] == [1.0, 1.0, 1.0] and nonlinearity(on) > 1e-2
