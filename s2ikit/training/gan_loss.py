"""Fusion-S2iGan objective (Sect. 4.3). The loss owns every forward pass; the loop only picks the phase.

D (eq. 19): hinge on real/matching, 1/2 fake/matching and 1/2 real/mismatched pairs (the speech embeddings of
            the batch shifted by one, as DF-GAN does), plus MA-GP (eq. 20): the gradients of D(x, s) with respect
            to the real image and the speech embedding, concatenated, per-sample L2 norm to the power p, times k.
            (The paper writes (||grad_x|| + ||grad_s||)^p; DF-GAN's code, which the paper builds on, takes the norm
            of the concatenation; we follow the code.) The real/matching forward pass is computed once, with
            gradients enabled on its inputs, and serves both the hinge term and the penalty.
With gan.mode_seeking_weight (beyond the paper; MSGAN, Mao et al. 2019, as DiverGAN uses): G's loss adds
            weight / ratio, the ratio of the images' distance to z's for pairs of one speech input and two z.
G:          -D(G(z, s), s) plus a DAMSM-style matching loss between the generated image (through the frozen
            pretrained image encoder) and s: 10 x cos, same-class off-diagonals masked, cross-entropy both ways.
With gan.lecam_weight (beyond the paper; Tseng et al. 2021): D's loss adds weight x (relu(D(real) - a_fake)^2 +
            relu(a_real - D(fake))^2), a_real and a_fake moving averages of D's mean scores (averaged over the
            processes under DDP, so that every rank holds the same anchors and resume is exact on any of them).
Beyond the paper, with gan.speech_noise: G's input speech is perturbed and re-normalised, the phases judge the
images against the clean embedding (conditioning augmentation without the KL term).
One generator forward pass per step serves both phases, as in DF-GAN: D's update does not touch G, so the
images are the ones a second pass would make, and the G phase reuses their graph. D's parameters are frozen
during the G phase's D pass so its backward skips gradients that the next D phase would discard.
Each phase is one call on what it is handed: `generate` returns the images with what G drew them from
(`Generated`), which the caller passes to both phases; the only state the loss keeps between calls is LeCam's
anchors, saved and restored with `state_dict`/`load_state_dict`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from s2ikit.config import GANConfig
from s2ikit.core.augment import augment_real, translate
from s2ikit.training.encoder_loss import matching_loss


def ma_gp(
    scores: torch.Tensor,
    images: torch.Tensor,
    speech: torch.Tensor,
    weight: float,
    power: float,
    scale: float | None = None,
) -> torch.Tensor:
    """Matching-aware zero-centred gradient penalty, eq. 20 (DF-GAN's form). `scale` (fp16's loss scale): the
    scores are differentiated scaled, so that their gradients do not underflow, and the scale divided out."""
    total = scores.sum() if scale is None else scores.sum() * scale
    grad_x, grad_s = torch.autograd.grad(total, (images, speech), create_graph=True)
    if scale is not None:
        grad_x, grad_s = grad_x / scale, grad_s / scale
    grads = torch.cat([grad_x.flatten(1), grad_s.flatten(1)], dim=1)
    return weight * grads.norm(2, dim=1).pow(power).mean()


@dataclass(frozen=True)
class Generated:
    """One step's generated images and G's inputs: the D phase scores the images detached, the G phase keeps
    their graph and draws mode seeking's partner images from the same inputs."""

    images: torch.Tensor
    z: torch.Tensor
    speech: torch.Tensor  # what G saw: the batch's embeddings, perturbed with gan.speech_noise


class FusionS2iGanLoss:
    def __init__(
        self, generator: nn.Module, discriminator: nn.Module, image_encoder: nn.Module | None, config: GANConfig
    ):
        self.G, self.D, self.image_encoder, self.config = generator, discriminator, image_encoder, config
        self.anchors: torch.Tensor | None = None  # LeCam's (a_real, a_fake); part of the resumable state

    def generate(self, speech: torch.Tensor, z: torch.Tensor, rng: torch.Generator | None = None) -> Generated:
        """This step's images, with their graph: `discriminator_loss` detaches them, `generator_loss` keeps it.
        With gan.speech_noise, G sees a perturbed copy of `speech` (noise drawn from `rng`); the phases score
        the images against `speech` itself."""
        if self.config.speech_noise > 0:
            noise = torch.randn(speech.shape, generator=rng).to(speech.device)
            speech = F.normalize(speech + self.config.speech_noise * noise, dim=1)
        return Generated(self.G(z, speech), z, speech)

    def discriminator_loss(
        self,
        real: torch.Tensor,
        speech: torch.Tensor,
        fake: torch.Tensor,
        rng: torch.Generator | None = None,
        penalty_scale: float | None = None,
    ) -> tuple[torch.Tensor, dict]:
        """`penalty_scale`: fp16's loss scale, for MA-GP's gradient (training/precision.py); None otherwise."""
        real = translate(real.detach(), self.config.augment_translation, rng).requires_grad_(True)
        speech = speech.detach().requires_grad_(True)
        score_real, score_mismatch = self.D(real, speech, speech.roll(1, dims=0))
        score_fake = self.D(translate(fake.detach(), self.config.augment_translation, rng), speech)
        hinge = (
            F.relu(1.0 - score_real).mean()
            + 0.5 * F.relu(1.0 + score_fake).mean()
            + 0.5 * F.relu(1.0 + score_mismatch).mean()
        )
        penalty = ma_gp(score_real, real, speech, self.config.ma_gp_weight, self.config.ma_gp_power, penalty_scale)
        loss = hinge + penalty
        lecam = self._lecam(score_real, score_fake) if self.config.lecam_weight > 0 else None
        if lecam is not None:
            loss = loss + self.config.lecam_weight * lecam
        stats = {
            "d_loss": loss,
            "d_hinge": hinge,
            "ma_gp": penalty,
            "d_real": score_real.mean(),
            "d_fake": score_fake.mean(),
        }
        if lecam is not None:
            stats["d_lecam"] = lecam
        return loss, {k: v.detach() for k, v in stats.items()}  # on the device: the engine reads them per interval

    def _lecam(self, score_real: torch.Tensor, score_fake: torch.Tensor) -> torch.Tensor:
        """LeCam's term against the anchors, which first take in this step's mean scores."""
        means = torch.stack([score_real.mean(), score_fake.mean()]).detach().float()
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(means)
            means /= dist.get_world_size()
        decay = self.config.lecam_decay
        self.anchors = means if self.anchors is None else decay * self.anchors + (1 - decay) * means
        a_real, a_fake = self.anchors
        return F.relu(score_real - a_fake).pow(2).mean() + F.relu(a_real - score_fake).pow(2).mean()

    def state_dict(self) -> dict[str, torch.Tensor]:
        """What a resumed run needs besides the networks and optimisers: LeCam's anchors (none before use)."""
        return {} if self.anchors is None else {"lecam_anchors": self.anchors}

    def load_state_dict(self, state: dict[str, torch.Tensor], device: torch.device) -> None:
        """`device`: where the scores will be (checkpoints load onto the CPU)."""
        anchors = state.get("lecam_anchors")
        self.anchors = None if anchors is None else anchors.to(device)

    def generator_loss(
        self,
        generated: Generated,
        speech: torch.Tensor,
        class_ids: torch.Tensor,
        rng: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, dict]:
        fake = generated.images
        trainable = [p for p in self.D.parameters() if p.requires_grad]
        for p in trainable:  # recorded at forward time: the backward then skips D's weight gradients
            p.requires_grad_(False)
        try:
            adversarial = -self.D(translate(fake, self.config.augment_translation, rng), speech).mean()
        finally:
            for p in trainable:
                p.requires_grad_(True)
        loss, stats = adversarial, {"g_adv": adversarial.detach()}
        if self.image_encoder is not None and self.config.damsm_weight > 0:
            seen = fake
            if self.config.augment_matching != "none":
                seen = translate(
                    augment_real(fake, self.config.augment_matching, rng), self.config.augment_translation, rng
                )
            damsm = matching_loss(
                self.image_encoder(seen).float(), speech.float(), class_ids, self.config.matching_scale
            )
            loss = loss + self.config.damsm_weight * damsm
            stats["g_damsm"] = damsm.detach()
        if self.config.mode_seeking_weight > 0:
            ratio = self._mode_seeking(generated, rng)
            loss = loss + self.config.mode_seeking_weight / (ratio + 1e-5)
            stats["g_mode_seeking"] = ratio.detach()
        stats["g_loss"] = loss.detach()
        return loss, stats

    def _mode_seeking(self, generated: Generated, rng: torch.Generator | None) -> torch.Tensor:
        """MSGAN's ratio: how far the images of one speech input move per unit of z, for half the batch, each
        image against a partner drawn from the same speech with another z. With gan.output_symmetry the
        partner keeps its image's pose (z's first component): a symmetry leaves the distance between two
        images as it is, so the ratio counts only what z changes in the drawing, which the pose cannot supply."""
        fake, z, speech = generated.images, generated.z, generated.speech
        half = max(z.shape[0] // 2, 1)
        z2 = torch.randn(z[:half].shape, generator=rng).to(z.device)
        if self.config.output_symmetry != "none":
            z2[:, 0] = z[:half, 0]
        partner = self.G(z2, speech[:half])
        return (fake[:half] - partner).abs().mean() / (z[:half] - z2).abs().mean()
