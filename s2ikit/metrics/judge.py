"""The class-accuracy judge: does a generated image show what its caption says?

A CNN (`ImageClassifier`) is trained on real images of the prepared data set at the generator's resolution,
with one head for the class and one per judged attribute (shapes: colour, shape, size). Its accuracy on real
held-out images is reported beside its verdicts on generated ones, so a reader sees how far to trust it.

Which real images train it: the training split when it holds every test class (shapes, Flickr-style seen
splits); otherwise (CUB's and Oxford's unseen-class splits, where no training image shows a test class) the
test split's own real images, minus a seeded fifth kept for the calibration number.
Trained once per (data set, resolution, judge settings) and cached next to the shards in `DATA/eval/`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from s2ikit.config import EvaluateConfig, LoaderConfig
from s2ikit.core.augment import augment_images
from s2ikit.core.checkpoints import load_file, save_file
from s2ikit.core.images import to_float, to_uint8
from s2ikit.data.dataset_info import DatasetInfo
from s2ikit.data.loader import first_rows, make_loader
from s2ikit.models.classifier import ImageClassifier
from s2ikit.utils.atomic import fingerprint
from s2ikit.utils.seeds import derive_seed

VERSION = 2  # bump when training changes, so cached judges are retrained


@dataclass
class RealImages:
    images: torch.Tensor  # (N, 3, S, S) uint8
    labels: list[dict[str, Any]]  # per image: head name -> value
    keys: list[str]


def image_labels(class_id: int, attributes: dict[str, Any], judged: tuple[str, ...]) -> dict[str, Any]:
    labels: dict[str, Any] = {name: attributes[name] for name in judged if name in attributes}
    if class_id >= 0:
        labels["class"] = class_id
    return labels


def load_real(data_dir: Path, split: str, size: int, judged: tuple[str, ...]) -> RealImages:
    """Every image of a split once (the loader yields one row per caption)."""
    images, labels, keys, seen = [], [], [], set()
    for batch in make_loader(data_dir, LoaderConfig(split=split, mode="test", batch_size=64)):
        rows = first_rows(batch["key"], seen)  # a batch holds several captions of one image
        for i in rows:
            keys.append(batch["key"][i])
            labels.append(image_labels(int(batch["class_id"][i]), batch["attributes"][i], judged))
        if rows:
            images.append(to_uint8(batch["image"][rows], size))
    return RealImages(torch.cat(images), labels, keys)


def _subset(real: RealImages, rows: list[int]) -> RealImages:
    return RealImages(real.images[rows], [real.labels[i] for i in rows], [real.keys[i] for i in rows])


def _held_out(key: str) -> bool:
    return derive_seed(0, "judge/held_out", key) % 5 == 0  # a fifth, the same on every machine


class Judge:
    def __init__(self, model: ImageClassifier, vocab: dict[str, list], size: int, info: dict[str, Any]):
        self.model, self.vocab, self.size, self.info = model.eval(), vocab, size, info
        self.index = {head: {value: i for i, value in enumerate(values)} for head, values in vocab.items()}

    def targets(self, labels: list[dict[str, Any]], head: str) -> torch.Tensor:
        """Index of each label in the head's vocabulary; -1 where the judge never saw that value."""
        return torch.tensor([self.index[head].get(lab.get(head), -1) for lab in labels], dtype=torch.long)

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        """images in [-1, 1] (any size) -> the judge's penultimate features, as it sees them (its size, uint8)."""
        device = next(self.model.parameters()).device
        return self.model.features(to_float(to_uint8(images.float(), self.size)).to(device)).float()

    @torch.no_grad()
    def correct(self, images: torch.Tensor, labels: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """images in [-1, 1] (any size) -> per head, a bool per image: did the judge see the caption's label?"""
        device = next(self.model.parameters()).device
        x = to_float(to_uint8(images.float(), self.size)).to(device)
        logits = self.model(x)
        return {head: logits[head].argmax(1).cpu() == self.targets(labels, head) for head in self.vocab}


def _train(real: RealImages, vocab: dict[str, list], config: EvaluateConfig, device, log) -> Judge:
    torch.manual_seed(config.seed)
    model = ImageClassifier({head: len(values) for head, values in vocab.items()}, config.judge_width).to(device)
    judge = Judge(model, vocab, real.images.shape[-1], {})
    targets = {head: judge.targets(real.labels, head) for head in vocab}
    steps_per_epoch = max(1, len(real.keys) // config.judge_batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.judge_lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, config.judge_lr, total_steps=config.judge_epochs * steps_per_epoch
    )
    gen = torch.Generator().manual_seed(config.seed)
    started = time.monotonic()
    model.train()
    for epoch in range(config.judge_epochs):
        order = torch.randperm(len(real.keys), generator=gen)
        for step in range(steps_per_epoch):
            rows = order[step * config.judge_batch_size : (step + 1) * config.judge_batch_size]
            x = augment_for_judge(to_float(real.images[rows]), config.judge_augment, gen).to(device)
            logits = model(x)
            loss = sum(F.cross_entropy(logits[h], targets[h][rows].to(device), ignore_index=-1) for h in vocab)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        log(f"judge epoch {epoch + 1}/{config.judge_epochs}: loss {loss.item():.3f}")
    model.eval()
    judge.info["train_seconds"] = round(time.monotonic() - started, 1)
    return judge


def augment_for_judge(x: torch.Tensor, mode: str, gen: torch.Generator) -> torch.Tensor:
    """The encoder's flips ("flip"; quarter turns too for "dihedral"), then a random blur and noise per image:
    generated images are softer and noisier than real ones, and a judge that only knew crisp edges would blame
    the style, not the content."""
    x = augment_images(x, mode, gen)
    kernel = torch.tensor([0.25, 0.5, 0.25])
    blurred = F.conv2d(
        F.pad(x, (1, 1, 1, 1), mode="replicate"), (kernel[:, None] * kernel[None, :]).expand(3, 1, 3, 3), groups=3
    )
    mix = torch.rand(x.shape[0], 1, 1, 1, generator=gen)
    x = x + mix * (blurred - x)
    noise = 0.05 * torch.rand(x.shape[0], 1, 1, 1, generator=gen) * torch.randn(x.shape, generator=gen)
    return (x + noise).clamp(-1, 1)


def _accuracy(judge: Judge, real: RealImages) -> dict[str, float]:
    hits: dict[str, list[torch.Tensor]] = {head: [] for head in judge.vocab}
    for start in range(0, len(real.keys), 256):
        rows = list(range(start, min(start + 256, len(real.keys))))
        for head, ok in judge.correct(to_float(real.images[rows]), [real.labels[i] for i in rows]).items():
            hits[head].append(ok)
    return {head: float(torch.cat(v).float().mean()) for head, v in hits.items()}


def load_or_train_judge(
    data: DatasetInfo, size: int, config: EvaluateConfig, device: torch.device, log: Callable[[str], None]
) -> Judge:
    """The cached judge for (data set, size, settings), trained first if there is none."""
    data_dir = data.root
    settings = {
        "version": VERSION, "dataset": data.sha256, "size": size,
        **{k: getattr(config, k) for k in ("judge_attributes", "judge_epochs", "judge_width", "judge_batch_size",
                                           "judge_lr", "judge_augment", "seed")},
    }  # fmt: skip
    path = data_dir / "eval" / f"judge-{fingerprint(settings)[:16]}.pt"
    if path.is_file():
        state = load_file(path)
        model = ImageClassifier({h: len(v) for h, v in state["vocab"].items()}, config.judge_width)
        model.load_state_dict(state["model"])
        return Judge(model.to(device), state["vocab"], size, state["info"])
    judged = tuple(config.judge_attributes)
    train, test = load_real(data_dir, "train", size, judged), load_real(data_dir, "test", size, judged)
    test_classes = {lab.get("class") for lab in test.labels}
    if test_classes <= {lab.get("class") for lab in train.labels}:
        fit, calibrate, source = train, test, "train split; calibrated on the real test images"
    else:  # unseen-class split: only test images show test classes
        held = [i for i, key in enumerate(test.keys) if _held_out(key)]
        rest = [i for i, key in enumerate(test.keys) if not _held_out(key)]
        fit, calibrate = _subset(test, rest), _subset(test, held)
        source = "test split's real images (unseen-class split); calibrated on a held-out fifth of them"
    vocab = {head: sorted({lab[head] for lab in fit.labels if head in lab}) for head in ("class", *judged)}
    vocab = {head: values for head, values in vocab.items() if values}
    log(f"training the class-accuracy judge on {len(fit.keys)} real images ({', '.join(vocab)}) at {size} px")
    judge = _train(fit, vocab, config, device, log)
    judge.info.update(
        {"trained_on": source, "images": len(fit.keys), "calibration_images": len(calibrate.keys),
         "real_accuracy": _accuracy(judge, calibrate), "size": size}
    )  # fmt: skip
    save_file({"model": judge.model.state_dict(), "vocab": vocab, "info": judge.info}, path)
    return judge
