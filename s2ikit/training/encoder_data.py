"""What encoder training needs to know about a prepared data set: splits, a held-out validation part, classes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from s2ikit.data.dataset_info import read_dataset
from s2ikit.data.records import read_index
from s2ikit.utils.errors import UserError
from s2ikit.utils.seeds import derive_seed


@dataclass(frozen=True)
class EncoderData:
    root: Path
    n_mels: int
    fit_keys: frozenset[str]  # training images used for gradient steps
    val_keys: frozenset[str]  # training images held out for model selection (never the test split)
    class_index: dict[int, int]  # data set class id -> index of the distinctive classifier (training classes)


def carve_validation(keys: list[str], fraction: float, seed: int) -> frozenset[str]:
    """A fixed, seeded subset of `keys`: the same on every rank and every rerun."""
    scored = sorted(keys, key=lambda k: derive_seed(seed, "encoder/validation", k))
    return frozenset(scored[: round(len(keys) * fraction)])


def load_encoder_data(root: str | Path, val_fraction: float, seed: int) -> EncoderData:
    root = Path(root)
    dataset = read_dataset(root)
    records = [r for r in read_index(root / "index.jsonl") if r.split == "train"]
    if not records:
        raise UserError(f"{root}: no training split")
    keys = [r.key for r in records]
    val = carve_validation(keys, val_fraction, seed)
    if not val or len(val) == len(keys):
        raise UserError(f"encoder.val_fraction {val_fraction} leaves no validation or no training images")
    train_classes = sorted({r.class_id for r in records if r.class_id >= 0})
    return EncoderData(
        root=root,
        n_mels=dataset.features.n_mels,
        fit_keys=frozenset(keys) - val,
        val_keys=val,
        class_index={c: i for i, c in enumerate(train_classes)},
    )
