"""`s2ikit evaluate`: generate images for every test caption with the EMA generator and measure them.

One pass over the test split (every caption; `images_per_caption` images each, z a pure function of (seed,
caption row, k)) feeds every metric at once:
- class accuracy: the judge (`judge.py`) checks each generated image against its caption's class / attributes;
- FID and IS (`fidelity.py`), when torch-fidelity's Inception weights are present;
- S2IGAN's mAP and R@k (real test images as queries against generated images, cosine of torchvision
  Inception-v3 pooled features), when torchvision's ImageNet Inception weights are present;
- speech<->image retrieval of the trained encoders on the real test images, and caption->generated-image R@k
  through the encoders' image side (is each caption's own picture the one its speech points to?).
A metric whose weights are missing is skipped with the reason; the others still run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from s2ikit.config import EvaluateConfig, LoaderConfig, as_dict
from s2ikit.data.loader import first_rows, make_loader
from s2ikit.evaluation import fidelity
from s2ikit.evaluation.generation import GeneratorBundle, generate_images, load_bundle
from s2ikit.evaluation.judge import image_labels, load_or_train_judge
from s2ikit.evaluation.retrieval import cross_modal_retrieval, mean_average_precision, recall_at_k
from s2ikit.evaluation.select import BEST, SELECTION
from s2ikit.training import checkpoint
from s2ikit.training.augment import check_symmetry
from s2ikit.utils.atomic import file_sha256, read_json


@dataclass
class Collected:
    """What the pass over the test split keeps (features, not images, except the few shown in grids)."""

    caption_image: list[str] = field(default_factory=list)  # image key of each generated image
    caption_class: list[int] = field(default_factory=list)
    caption_speech: list[torch.Tensor] = field(default_factory=list)  # speech embedding of each caption
    generated_embedding: list[torch.Tensor] = field(default_factory=list)  # encoders' image side, per generated
    generated_inception: list[torch.Tensor] = field(default_factory=list)  # torchvision pool features, float16
    generated_logits: list[torch.Tensor] = field(default_factory=list)  # IS logits
    hits: dict[str, list[torch.Tensor]] = field(default_factory=dict)  # judge: head -> bools
    judged_labels: list[dict[str, Any]] = field(default_factory=list)  # the caption's labels, per generated image
    real: dict[str, dict[str, Any]] = field(default_factory=dict)  # image key -> class, features
    grid: list[dict[str, Any]] = field(default_factory=list)
    grid_shown: set = field(default_factory=set)  # classes (or images) already in the grid


def evaluate(
    run: str | Path,
    config: EvaluateConfig,
    out_dir: Path | None = None,
    data_dir: Path | None = None,
    fidelity_weights: str = "",
    inception_weights: str = "",
    device: torch.device | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    started = time.monotonic()
    check_symmetry(config.judge_augment, "evaluate.judge_augment")
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    bundle = load_bundle(run).to(device)
    data_dir = Path(data_dir or bundle.info["data"])
    run_dir = bundle.path.parent.parent
    out_dir = Path(out_dir or run_dir / "eval")
    dataset = json.loads((data_dir / "dataset.json").read_text())
    size = bundle.generator.image_size
    report: dict[str, Any] = {
        "run": str(run_dir), "checkpoint": str(bundle.path), "step": bundle.info["step"], "data": str(data_dir),
        "dataset": dataset["dataset"], "settings": as_dict(config), "image_size": size, "skipped": {},
    }  # fmt: skip
    selection = _selection_of(bundle)
    if selection:
        report["selection"] = selection

    judge = None
    if any(c >= 0 for c in dataset.get("class_ids", [])) or config.judge_attributes:
        judge = load_or_train_judge(data_dir, size, config, device, log)
    else:
        report["skipped"]["class_accuracy"] = "the data set has no classes (and evaluate.judge_attributes is empty)"
    tools = _load_tools(bundle, device, fidelity_weights, inception_weights, report["skipped"], log)
    log(f"generating {config.images_per_caption} image(s) per test caption at {size} px")
    got = _generate_and_measure(bundle, data_dir, config, judge, tools)

    n_generated = len(got.caption_image)
    report["generated_images"] = n_generated
    report["test_captions"] = n_generated // config.images_per_caption
    if judge is not None:
        report["class_accuracy"] = {h: float(torch.cat(v).float().mean()) for h, v in got.hits.items()}
        report["class_accuracy_by_value"] = accuracy_by_value(got, tuple(config.judge_attributes))
        report["judge"] = judge.info
    if tools.fidelity is not None:
        report["fid"], report["inception_score"] = _fidelity(got, tools, data_dir, dataset, size, config, log)
    if tools.inception is not None:
        report["s2igan_retrieval"] = _s2igan_retrieval(got, config)
    if tools.encoders is not None:
        report["encoder_retrieval"] = _encoder_retrieval(got)
    report["seconds"] = round(time.monotonic() - started, 1)
    from s2ikit.evaluation.report import write_report

    report["report"] = str(out_dir / "report.md")
    write_report(report, got.grid, out_dir)
    return report


def accuracy_by_value(got: Collected, heads: tuple[str, ...]) -> dict[str, dict[str, dict[str, Any]]]:
    """Per judged attribute, the judge's accuracy on the images of each caption value (which shapes fail?)."""
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for head in heads:
        if head not in got.hits:
            continue
        hits = torch.cat(got.hits[head]).tolist()
        groups: dict[str, list[bool]] = {}
        for label, hit in zip(got.judged_labels, hits):
            groups.setdefault(str(label.get(head)), []).append(hit)
        table[head] = {v: {"accuracy": sum(h) / len(h), "images": len(h)} for v, h in sorted(groups.items())}
    return table


def _selection_of(bundle: GeneratorBundle) -> dict[str, Any] | None:
    """`s2ikit select`'s record, when the checkpoint evaluated is the one it chose (and not retrained since)."""
    run_dir = bundle.path.parent.parent
    if bundle.path.resolve() != (run_dir / BEST).resolve() or not (run_dir / SELECTION).is_file():
        return None
    selection = read_json(run_dir / SELECTION)
    return selection if selection.get("step") == bundle.info["step"] else None


@dataclass
class _Tools:
    """The optional feature extractors, each present only when its weights (or encoder run) are."""

    fidelity: fidelity.FidelityFeatures | None = None  # FID/IS features
    fidelity_path: Path | None = None
    fid: fidelity.FrechetDistance | None = None
    inception: nn.Module | None = None  # torchvision Inception-v3 for S2IGAN's mAP/R@k
    encoders: Any = None  # the trained encoders (training.encoder.Encoders)
    data_size: int = 0  # the shards' image size, at which the encoders learnt


def _load_tools(bundle: GeneratorBundle, device, fidelity_weights, inception_weights, skipped, log) -> _Tools:
    from s2ikit.models.image_encoder import InceptionImageEncoder, find_weights
    from s2ikit.training.encoder import load_best_encoders
    from s2ikit.utils.errors import UserError

    tools = _Tools()
    try:
        tools.fidelity_path = fidelity.find_fidelity_weights(fidelity_weights)
        tools.fidelity = fidelity.FidelityFeatures(tools.fidelity_path).to(device)
        tools.fid = fidelity.FrechetDistance()
    except FileNotFoundError as e:
        skipped["fid"] = skipped["inception_score"] = str(e)
    try:
        hint = "place inception_v3_google-0cc3c7bd.pth there or pass --image-weights PATH"
        weights = find_weights(inception_weights, ("inception_v3_google-*.pth",), "Inception-v3", hint)
        tools.inception = InceptionImageEncoder(weights, 16).to(device)
    except FileNotFoundError as e:
        skipped["s2igan_retrieval"] = f"mAP and R@k use torchvision's ImageNet Inception-v3: {e}"
    try:
        encoders, _ = load_best_encoders(bundle.info["encoder_run"])
        encoders.image.to(device)
        tools.encoders = encoders
    except (UserError, FileNotFoundError, TypeError) as e:
        skipped["encoder_retrieval"] = f"the encoder run is not loadable: {e}"
    for name, reason in skipped.items():
        log(f"skipping {name}: {reason}")
    return tools


@torch.no_grad()
def _generate_and_measure(bundle, data_dir, config: EvaluateConfig, judge, tools: _Tools) -> Collected:
    got, row, device = Collected(), 0, bundle.device
    loader = make_loader(data_dir, LoaderConfig(split="test", mode="test", batch_size=config.batch_size))
    for batch in loader:
        n, k = len(batch["key"]), config.images_per_caption
        tools.data_size = batch["image"].shape[-1]
        speech = bundle.speech_encoder(batch["mel"].to(device), batch["mel_lengths"].to(device)).float()
        # (n * k, 3, S, S): the k images of caption 0, then caption 1, ...
        images = generate_images(bundle, speech, k, config.seed, first_row=row).flatten(0, 1)
        row += n
        if judge is not None:
            labels = [
                image_labels(int(c), a, tuple(judge.vocab)) for c, a in zip(batch["class_id"], batch["attributes"])
            ]
            per_image = [lab for lab in labels for _ in range(k)]
            for head, ok in judge.correct(images, per_image).items():
                got.hits.setdefault(head, []).append(ok)
            got.judged_labels += per_image
        got.caption_image += [key for key in batch["key"] for _ in range(k)]
        got.caption_class += [int(c) for c in batch["class_id"] for _ in range(k)]
        got.caption_speech.append(speech.cpu())
        if tools.fidelity is not None:
            pool, logits = tools.fidelity(images)
            tools.fid.update(pool, real=False)
            got.generated_logits.append(logits.cpu())
        if tools.inception is not None:
            got.generated_inception.append(tools.inception.features(images).half().cpu())
        if tools.encoders is not None:
            got.generated_embedding.append(tools.encoders.image(_to_size(images, tools)).float().cpu())
        _collect_real(got, batch, tools, device)
        for i in range(n):
            # one caption per class (per image when there are no classes) until the grid is full
            shown = int(batch["class_id"][i]) if int(batch["class_id"][i]) >= 0 else batch["key"][i]
            if len(got.grid) < config.grid_captions and shown not in got.grid_shown:
                got.grid_shown.add(shown)
                got.grid.append(
                    {
                        "text": batch["text"][i],
                        "real": batch["image"][i],
                        "generated": images[i * k : (i + 1) * k].cpu(),
                    }
                )
    return got


def _to_size(images: torch.Tensor, tools: _Tools) -> torch.Tensor:
    """The encoders learnt at the shards' size; show them generated images at that size (as train-gan does)."""
    size = tools.data_size
    if size and images.shape[-1] != size:
        return F.interpolate(images, size=(size, size), mode="bilinear")
    return images


def _collect_real(got: Collected, batch, tools: _Tools, device) -> None:
    new = []
    for i, key in enumerate(batch["key"]):
        if key not in got.real:
            got.real[key] = {"class": int(batch["class_id"][i])}
            new.append(i)
    if not new:
        return
    images = batch["image"][new].to(device)
    if tools.inception is not None:
        for i, feats in zip(new, tools.inception.features(images).half().cpu()):
            got.real[batch["key"][i]]["inception"] = feats
    if tools.encoders is not None:
        for i, emb in zip(new, tools.encoders.image(images).float().cpu()):
            got.real[batch["key"][i]]["embedding"] = emb


def _fidelity(got, tools: _Tools, data_dir, dataset, size, config, log) -> tuple[dict, dict]:
    ref = fidelity.reference_path(data_dir, dataset["dataset"], file_sha256(data_dir / "dataset.json"), "test", size)
    fid = tools.fid
    if ref.is_file():
        fid.load_real_statistics(checkpoint.load(ref))
    else:
        log(f"fid ref: real test images at {size} px -> {ref}")
        device = next(tools.fidelity.parameters()).device
        loader = make_loader(data_dir, LoaderConfig(split="test", mode="test", batch_size=64))
        seen: set[str] = set()
        for batch in loader:
            rows = first_rows(batch["key"], seen)  # every image once, however many captions it has
            if rows:
                real = (
                    F.interpolate(batch["image"][rows], size=(size, size), mode="area")
                    if batch["image"].shape[-1] > size
                    else batch["image"][rows]
                )
                fid.update(tools.fidelity(real.to(device))[0], real=True)
        checkpoint.save(fid.real_statistics(), ref)
    real_n = int(fid.metric.real_features_num_samples)
    fid_report = {"value": fid.compute(), "real_images": real_n, "generated_images": len(got.caption_image),
                  "extractor": fidelity.EXTRACTOR, "weights": str(tools.fidelity_path), "protocol": fidelity.PROTOCOL,
                  "real_resized_to": size, "reference": str(ref)}  # fmt: skip
    mean, std = fidelity.inception_score(got.generated_logits, config.inception_splits, config.seed)
    is_report = {"mean": mean, "std": std, "splits": config.inception_splits, "images": len(got.caption_image),
                 "extractor": fidelity.EXTRACTOR}  # fmt: skip
    return fid_report, is_report


def _s2igan_retrieval(got: Collected, config: EvaluateConfig) -> dict[str, Any]:
    """S2IGAN: real test images as queries, generated images as the gallery, cosine of Inception pool features."""
    gallery = F.normalize(torch.cat(got.generated_inception).float(), dim=1)
    keys = list(got.real)
    queries = F.normalize(torch.stack([got.real[k]["inception"] for k in keys]).float(), dim=1)
    image_of = got.caption_image
    position = {k: i for i, k in enumerate(keys)}
    source = torch.tensor([position[k] for k in image_of])  # the real image each generated one came from
    own = torch.arange(len(keys))[:, None] == source[None, :]
    out: dict[str, Any] = {"queries": len(keys), "gallery": len(image_of)}
    out.update({f"R@{k}": v for k, v in recall_at_k(queries @ gallery.T, own).items()})
    if min(got.caption_class) >= 0:  # mAP: a few queries per class against their own captions' images
        per_class: dict[int, list[int]] = {}
        for i, k in enumerate(keys):
            per_class.setdefault(got.real[k]["class"], []).append(i)
        chosen = sorted(i for rows in per_class.values() for i in rows[: config.map_queries_per_class])
        chosen_keys = {keys[i] for i in chosen}
        cols = [j for j, k in enumerate(image_of) if k in chosen_keys]
        q_class = torch.tensor([got.real[keys[i]]["class"] for i in chosen])
        g_class = torch.tensor([got.caption_class[j] for j in cols])
        sim = queries[chosen] @ gallery[cols].T
        out["mAP"] = mean_average_precision(sim, q_class[:, None] == g_class[None, :])
        out["mAP_queries"], out["mAP_gallery"] = len(chosen), len(cols)
    return out


def _encoder_retrieval(got: Collected) -> dict[str, Any]:
    keys = list(got.real)
    position = {k: i for i, k in enumerate(keys)}
    speech = torch.cat(got.caption_speech)
    caption_keys = got.caption_image[:: len(got.caption_image) // speech.shape[0]]
    real = cross_modal_retrieval(
        speech,
        torch.tensor([position[k] for k in caption_keys]),
        torch.tensor([got.real[k]["class"] for k in caption_keys]),
        torch.stack([got.real[k]["embedding"] for k in keys]),
        torch.tensor([got.real[k]["class"] for k in keys]),
    )
    generated = torch.cat(got.generated_embedding)
    source = torch.arange(generated.shape[0]) // (generated.shape[0] // speech.shape[0])  # caption of each image
    hits = {1: 0.0, 5: 0.0, 10: 0.0}
    for start in range(0, speech.shape[0], 1024):  # in blocks: CUB's 29k x 29k similarities would need 3.4 GB
        rows = torch.arange(start, min(start + 1024, speech.shape[0]))
        block = recall_at_k(speech[rows] @ generated.T, rows[:, None] == source[None, :], tuple(hits))
        for k in hits:
            hits[k] += block[k] * len(rows)
    recall = {f"R@{k}": v / speech.shape[0] for k, v in hits.items()}
    return {"real_test_images": real, "caption_to_generated": recall}
