"""FID and IS: torchmetrics' accumulators over torch-fidelity's Inception-v3 (the TF-ported 2015-12-05 weights,
with the original TF resize, so numbers match torch-fidelity's and the TF reference implementation's protocol).

One Inception pass per batch gives both the 2048-d pool features (FID) and the 1008 unbiased logits (IS); the
torchmetrics metrics receive those features through a pass-through module, so they only do the statistics.
Real-image statistics (running float64 sums, as torchmetrics keeps them) are the `ref` step: computed once per
(data set, split, extractor, image size) and cached as a file, written to a temporary name and renamed.
FID is only comparable between runs with the same weights, resize and sample count; the report records all three.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.inception import InceptionScore

from s2ikit.core.checkpoints import load_file
from s2ikit.core.images import to_uint8
from s2ikit.models.image_encoder import find_weights

WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"  # torch-fidelity's release asset (its hub cache name)
EXTRACTOR = "torch-fidelity-inception-v3-2015-12-05"
PROTOCOL = "uint8 images, TF1-compatible bilinear resize to 299 px inside torch-fidelity's extractor"


def find_fidelity_weights(explicit: str | Path = "") -> Path:
    """The FID/IS Inception weights: an explicit path, else torch-fidelity's file in the torch hub cache
    (fetched there on first use)."""
    patterns = ("weights-inception-2015-12-05-*.pth", "pt_inception-2015-12-05-*.pth")
    return find_weights(explicit, patterns, "FID/IS Inception", "pass --inception-weights PATH")


class FidelityFeatures(nn.Module):
    """Images in [-1, 1] -> (2048 pool features, 1008 unbiased logits), from one Inception pass."""

    def __init__(self, weights: str | Path):
        super().__init__()
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        # torch-fidelity loads its file with weights_only=False; load it safely here and hand it a clean copy
        state = load_file(weights)
        with tempfile.TemporaryDirectory() as tmp:
            clean = Path(tmp) / "inception.pth"
            torch.save(state, clean)
            self.net = FeatureExtractorInceptionV3(
                name="inception-v3-compat",
                features_list=["2048", "logits_unbiased"],
                feature_extractor_weights_path=str(clean),
            )

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pool, logits = self.net(to_uint8(images))
        return pool, logits


class _PassThrough(nn.Module):
    """Hands precomputed features to a torchmetrics metric."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


class FrechetDistance:
    """FID between real statistics (loaded or accumulated) and the generated images' features."""

    def __init__(self, num_features: int = 2048):
        self.metric = FrechetInceptionDistance(feature=_PassThrough(num_features), reset_real_features=False)

    def update(self, features: torch.Tensor, real: bool) -> None:
        self.metric.update(features.double().cpu(), real=real)

    def real_statistics(self) -> dict[str, torch.Tensor]:
        m = self.metric
        return {"sum": m.real_features_sum, "cov_sum": m.real_features_cov_sum, "n": m.real_features_num_samples}

    def load_real_statistics(self, stats: dict[str, torch.Tensor]) -> None:
        m = self.metric
        m.real_features_sum, m.real_features_cov_sum = stats["sum"].double(), stats["cov_sum"].double()
        m.real_features_num_samples = stats["n"].long()

    def compute(self) -> float:
        return float(self.metric.compute())


def inception_score(logits: Iterable[torch.Tensor], splits: int = 10, seed: int = 0) -> tuple[float, float]:
    """Mean and standard deviation over `splits` parts of exp(E KL(p(y|x) || p(y)))."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torchmetrics warns that IS keeps every feature in memory
        metric = InceptionScore(feature=_PassThrough(0), splits=splits)
    for batch in logits:
        metric.update(batch.double().cpu())
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)  # IS shuffles before splitting: seeded, so a report is reproducible
    try:
        mean, std = metric.compute()
    finally:
        torch.random.set_rng_state(state)
    return float(mean), float(std)


def reference_path(data_dir: Path, dataset: str, dataset_sha: str, split: str, size: int) -> Path:
    return data_dir / "eval" / f"fid-ref-{dataset}-{split}-{EXTRACTOR}-{size}px-{dataset_sha[:12]}.pt"
