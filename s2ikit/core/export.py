"""The exported model folder: the one format for sharing a trained generator, written and read here only.

`s2ikit export RUN OUT` turns a run's `generator` checkpoint into a folder that holds no pickle at all, so it can
be opened by anyone without trusting its author, and that a model hub serves as is (`s2ikit export RUN OUT
--push-to-hub USER/NAME` or `hf upload USER/NAME OUT .` uploads it unchanged; the README.md is the hub's model card):

- `generator.safetensors`: the EMA generator's weights;
- `speech_encoder.safetensors`: the frozen speech encoder it was trained with;
- `config.json`: `format`, `format_version`, the step, the arguments that rebuild both networks, the log-mel
  recipe and TTS settings, each weight file's sha256, the training settings and the evaluation's headline numbers;
- `README.md`: the model card (data set, steps, evaluation, how to load it, licence notes).

A reader checks each weight file against the sha256 in config.json, so a half-copied or edited folder is refused
in one line instead of silently generating from mismatched weights.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from s2ikit import __version__
from s2ikit.config import FeatureConfig, TTSConfig, build_section, datasets
from s2ikit.core import checkpoints, hub
from s2ikit.core.export_config import Invalid, confined, read_config, validate
from s2ikit.core.factories import build_generator, build_speech_encoder
from s2ikit.core.inference import GeneratorBundle, load_bundle, resolve_checkpoint
from s2ikit.utils.atomic import atomic_path, file_sha256, write_bytes, write_json
from s2ikit.utils.errors import UserError

FORMAT, FORMAT_VERSION = "s2ikit-generator-export", 1
CONFIG, CARD = "config.json", "README.md"
WEIGHTS = {"generator": "generator.safetensors", "speech_encoder": "speech_encoder.safetensors"}
_HEADER_BYTES = 16 << 20  # a weight file's JSON header and padding, beyond its tensors' bytes

# What the weights inherit from the data they were trained on (the model card's licence section): each data set
# declares its own terms (s2ikit.config.datasets()); this is said of one that is not registered here.
UNKNOWN_DATA_TERMS = "Check the terms of the data set these weights were trained on before sharing or using them."


def data_terms(name: str) -> str:
    entry = datasets().get(name)
    return entry.terms if entry is not None else UNKNOWN_DATA_TERMS


def is_export(path: str | Path) -> bool:
    """Whether `path` is a folder this module wrote."""
    config = Path(path) / CONFIG
    if not config.is_file():
        return False
    try:
        found = read_config(config)
    except UserError:
        return False
    return isinstance(found, dict) and found.get("format") == FORMAT


def load_pretrained(path: str | Path, revision: str | None = None) -> GeneratorBundle:
    """An exported folder, a `train-gan` run folder, a generator checkpoint file (.pt, also older ones), or the id
    USER/NAME of a Hub model repo holding an export (at `revision`), when no such local path exists.

    A Hub repo is fetched into the Hub's cache (hub.py) and read as an export only, with the same checks as a local
    one: a downloaded folder is never unpickled."""
    if not Path(path).exists() and hub.is_hub_id(path):
        folder = hub.download(str(path), revision)
        if not (folder / CONFIG).is_file():
            raise UserError(f"{path}: the Hub repo holds no {CONFIG}; it is not an `s2ikit export` folder")
        # the cache's snapshots/COMMIT/ files are links to the same repo's blobs/: they must stay in that repo's folder
        bundle = load_export(folder, within=folder.parents[1])
        bundle.info["hub"] = {"repo": str(path), "revision": revision, "within": folder.parents[1]}
        return bundle
    if revision is not None:
        raise UserError(f"revision={revision!r}: only for a Hub id USER/NAME, and {path} is a local path")
    path = Path(path)
    if path.is_dir() and is_export(path):
        return load_export(path)
    if path.is_dir() and (path / CONFIG).is_file() and not (path / checkpoints.GENERATOR).is_file():
        # a damaged export is named with what is wrong in its config.json, not as "neither" below
        config = read_config(path / CONFIG)
        if not isinstance(config, dict) or {"format", "files", "generator_args"} & set(config):
            return load_export(path)
    if path.is_dir() and not (path / checkpoints.GENERATOR).is_file():
        raise UserError(f"{path}: neither an `s2ikit export` folder ({CONFIG}) nor a `s2ikit train-gan` run "
                        f"({checkpoints.GENERATOR})")  # fmt: skip
    if not path.exists():
        raise UserError(f"{path}: not found")
    return load_bundle(path)


def _save_weights(state: dict[str, torch.Tensor], path: Path, network: str) -> None:
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}  # no shared storage
    # one key: safetensors keeps its metadata in a hash map, so several keys come out in another order on every
    # save, and two exports of one checkpoint would differ in their bytes and sha256
    metadata = {"s2ikit": json.dumps({"format": FORMAT, "format_version": FORMAT_VERSION, "network": network})}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
        os.chmod(tmp, 0o644)  # a file to share: readable by all, as a model hub serves it


def _load_weights(path: Path, expected_sha256: str, largest: int) -> dict[str, torch.Tensor]:
    """The tensors of a weight file, once its size (at most `largest` bytes) and sha256 check out."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise UserError(f"{path}: missing from the exported folder; export it again")
    if path.stat().st_size > largest:  # refused before hashing: a huge file would take minutes to read
        raise UserError(f"{path}: {path.stat().st_size:,} bytes, more than the network {CONFIG} describes can "
                        f"hold ({largest:,}); export or download it again")  # fmt: skip
    if file_sha256(path) != expected_sha256:
        raise UserError(f"{path}: does not match the sha256 in {CONFIG} (a partial copy or an edited file); "
                        "export or download it again")  # fmt: skip
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(f"{path}: not a readable safetensors file ({first})") from None


def _dataset_summary(data: str | None) -> dict[str, Any]:
    """The data set's name and size, when its prepared folder is still where training read it."""
    from s2ikit.data.dataset_info import read_dataset

    if not data:
        return {"name": "unknown"}
    try:
        info = read_dataset(data)
    except UserError:
        return {"name": Path(data).name}
    splits = {name: {"samples": s.samples, "captions": s.captions} for name, s in info.splits.items()}
    return {"name": info.dataset, "image_size": info.image_size, "classes": len(info.classes), "splits": splits}


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not is_export(out):
        raise UserError(f"{out}: not empty and not an `s2ikit export` folder; choose a new or empty folder")


def copy_export(source: str | Path, out: str | Path, within: Path | None = None) -> Path:
    """Write the export folder `out` as a copy of the export folder `source` (as load_export read it, `within` as
    there), each weight file checked against its sha256 again; config.json last, as export_generator writes it."""
    source, out = Path(source), Path(out)
    if out.resolve() == source.resolve():
        return out
    _check_out(out)
    file = source / CONFIG
    config, _ = validate(read_config(file), file, tuple(WEIGHTS), FORMAT, FORMAT_VERSION)
    out.mkdir(parents=True, exist_ok=True)
    for name, entry in config["files"].items():
        try:
            path = confined(source, entry["path"], f"files.{name}.path", within)
            target = confined(out, entry["path"], f"files.{name}.path")
        except Invalid as e:
            raise UserError(f"{file}: {e}") from None
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise UserError(f"{path}: does not match the sha256 in {CONFIG}; export or download it again")
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as tmp:
            tmp.write_bytes(data)
            os.chmod(tmp, 0o644)
    write_bytes(out / CARD, (source / CARD).read_bytes() if (source / CARD).is_file() else model_card(config).encode())
    write_json(out / CONFIG, config)
    return out


def export_generator(source: str | Path, out: str | Path, evaluation: dict[str, Any] | None = None) -> Path:
    """Write the export folder `out` from a run folder or generator checkpoint; returns `out`.

    `evaluation`: the evaluation's headline numbers (evaluation.report.read_summary), shown in the model card
    when they were measured on this checkpoint's step. Each file is written atomically and config.json last, so
    an interrupted export leaves a folder that load_export refuses rather than one that half-works."""
    path, out = resolve_checkpoint(source), Path(out)
    _check_out(out)
    ckpt = checkpoints.load(path, "generator")
    out.mkdir(parents=True, exist_ok=True)
    _save_weights(ckpt["generator"], out / WEIGHTS["generator"], "generator")
    _save_weights(ckpt["speech_encoder"], out / WEIGHTS["speech_encoder"], "speech_encoder")
    step = ckpt.get("step")
    if evaluation is not None and evaluation.get("step") != step:
        evaluation = {"step": evaluation.get("step"), "other_step": True}
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "s2ikit_version": __version__,
        "step": step,
        "dataset": _dataset_summary(ckpt.get("data")),
        "generator_args": ckpt["generator_args"],
        "speech_args": ckpt["speech_args"],
        "features": ckpt["features"],
        "tts": ckpt.get("tts"),
        "stopped": ckpt.get("stopped"),
        "training": (ckpt.get("config") or {}).get("gan"),
        "files": {name: {"path": file, "sha256": file_sha256(out / file)} for name, file in WEIGHTS.items()},
        "evaluation": evaluation,
    }
    write_bytes(out / CARD, model_card(config).encode())
    write_json(out / CONFIG, config)
    return out


def load_export(folder: str | Path, within: Path | None = None) -> GeneratorBundle:
    """An exported folder -> the generator bundle `generate` uses (eval mode, on the CPU).

    Everything is checked before anything is built: config.json against its schema (export_config.py: every key,
    type and range; the networks' sizes), each weight file's path (inside the folder), size and sha256; the
    weights must then fit the networks tensor by tensor. Each problem is one line naming the file.
    `within`: a folder above `folder` that each weight file must resolve into (default `folder` itself)."""
    folder = Path(folder)
    file = folder / CONFIG
    config, sizes = validate(read_config(file), file, tuple(WEIGHTS), FORMAT, FORMAT_VERSION)
    states = {}
    for name, entry in config["files"].items():
        try:
            path = confined(folder, entry["path"], f"files.{name}.path", within)
        except Invalid as e:
            raise UserError(f"{file}: {e}") from None
        states[name] = _load_weights(path, entry["sha256"], 8 * sizes[name] + _HEADER_BYTES)
    generator = build_generator(config["generator_args"])
    speech = build_speech_encoder(config["speech_args"])
    for network, name in ((generator, "generator"), (speech, "speech_encoder")):
        source = f"{folder / config['files'][name]['path']}: does not fit the {name} {CONFIG} describes"
        checkpoints.load_state_strictly(network, states[name], source)
    features = build_section(FeatureConfig, config["features"], f"{file} features")
    tts = build_section(TTSConfig, config["tts"], f"{file} tts") if config.get("tts") else None
    info = {"step": config["step"], "data": None, "encoder_run": None, "stopped": config["stopped"],
            "dataset": config["dataset"]["name"]}  # fmt: skip
    return GeneratorBundle(generator.eval(), speech.eval(), features, tts, folder, info)


def _card_evaluation(config: dict[str, Any]) -> list[str]:
    evaluation = config.get("evaluation")
    if not evaluation:
        return ["Not evaluated yet: run `s2ikit evaluate RUN` before exporting to have its numbers here."]
    if evaluation.get("other_step"):
        return [
            f"The run's evaluation report is of step {evaluation['step']}, not of this checkpoint's step "
            f"{config['step']}, so its numbers are not shown; evaluate this checkpoint and export again."
        ]
    lines = [
        f"`s2ikit evaluate` on the test split: {evaluation.get('test_captions')} captions, "
        f"{evaluation.get('generated_images')} generated images.",
        "",
        "| metric | value |",
        "|---|---|",
    ]
    lines += [f"| {name} | {value:.4g} |" for name, value in evaluation.get("numbers", {}).items()]
    if evaluation.get("fid_protocol"):
        lines += ["", f"FID protocol: {evaluation['fid_protocol']}."]
    return lines


def model_card(config: dict[str, Any]) -> str:
    """README.md of the export: what a reader of a model hub page needs, with the hub's metadata header."""
    dataset = config["dataset"]
    name, size = dataset["name"], config["generator_args"]["image_size"]
    splits = dataset.get("splits", {})
    trained = ", ".join(f"{s}: {v['samples']} images, {v['captions']} captions" for s, v in splits.items())
    stopped = config.get("stopped") or {}
    ended = (f" (stopped by its time budget at step {stopped['step']} of {stopped['total_steps']})"
             if stopped.get("reason") == "time_budget" else "")  # fmt: skip
    voice = config.get("tts") or {}
    spoken = (f"Its captions were spoken by the `{voice.get('backend')}` TTS backend (voice `{voice.get('voice')}`); "
              "`text=` inputs are spoken the same way." if voice else
              "Its captions are recorded speech; `text=` inputs are spoken by the default offline voice.")  # fmt: skip
    lines = [
        "---",
        "library_name: s2ikit",
        "license: other",
        "tags: [speech-to-image, gan, fusion-s2igan]",
        "---",
        "",
        f"# Fusion-S2iGan on {name}",
        "",
        f"A speech-to-image generator trained with s2ikit (Fusion-S2iGan, Zhang & "
        f"Schomaker, 2024): a spoken description in, {size} x {size} px images out. Step {config['step']}{ended}.",
        "",
        "## Training data",
        "",
        f"Data set **{name}**" + (f" ({trained})" if trained else "") + f". {spoken}",
        "",
        "## Evaluation",
        "",
        *_card_evaluation(config),
        "",
        "## Use it",
        "",
        "```python",
        "from s2ikit import SpeechToImage",
        "",
        'pipe = SpeechToImage.from_pretrained("THIS_FOLDER")  # .to("cuda") for a GPU',
        'images = pipe(wav="description.wav", num=4, seed=0)  # PIL images; text="..." speaks a sentence first',
        "```",
        "",
        "or `s2ikit generate THIS_FOLDER --wav description.wav -n 4 -o out.png`. From the Hugging Face Hub, "
        "give the repo id `USER/NAME` in place of THIS_FOLDER (`pip install huggingface_hub`; `revision=` picks a "
        "branch, tag or commit), or fetch the folder with `hf download USER/NAME --local-dir THIS_FOLDER`.",
        "",
        "The folder holds no pickle: `generator.safetensors`, `speech_encoder.safetensors` and `config.json` (the "
        "arguments that rebuild both networks, the log-mel recipe, the TTS settings, each file's sha256).",
        "",
        "## Licence",
        "",
        "s2ikit is MIT-licensed. " + data_terms(name),
    ]
    return "\n".join(lines) + "\n"
