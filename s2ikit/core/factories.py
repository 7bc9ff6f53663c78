"""Networks built from typed configs, and rebuilt from the arguments a checkpoint stores.

Which settings reach a network is read from the network's own constructor: each of its arguments is a config
field of the same name (or the one `renamed` gives), supplied here (sizes known only at build time) or kept at its
default on purpose; any other argument is a TypeError when this module is imported, so a new `Generator`
argument cannot be left out of the config, the checkpoint's arguments or the resume check. Of those settings, the
ones in the "network" group shape the networks (and so their state dicts): a resume whose saved config differs in
one of them is refused, since the saved weights cannot fit the network the new config builds.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from s2ikit.config import EncoderConfig, GANConfig
from s2ikit.core import checkpoints
from s2ikit.models.discriminator import Discriminator
from s2ikit.models.generator import Generator
from s2ikit.models.image_encoder import build_image_encoder
from s2ikit.models.speech_encoder import SpeechEncoder
from s2ikit.utils.checks import in_group
from s2ikit.utils.errors import UserError

CONSTRUCTOR_GROUPS = ("network", "init")  # "init": starting values only, which a resume's weights replace


def config_arguments(
    network: Callable[..., Any],
    config: type,
    supplied: tuple[str, ...] = (),
    kept: tuple[str, ...] = (),
    renamed: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """`network`'s arguments that come from the dataclass `config`, as {argument: field}, in its signature's order.
    Raises TypeError for an argument that is neither a field (of the "network" or "init" group) nor `supplied` by
    the caller nor `kept` at its default, and for a name in `supplied`, `kept` or `renamed` it does not take."""
    renamed = dict(renamed or {})
    parameters = [
        p.name
        for p in inspect.signature(network).parameters.values()
        if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    stale = sorted({*supplied, *kept, *renamed} - set(parameters))
    if stale:
        raise TypeError(f"{network.__qualname__} takes no argument {', '.join(stale)}")
    fields = {f.name: f for f in dataclasses.fields(config)}
    out = {}
    for name in parameters:
        if name in supplied or name in kept:
            continue
        key = renamed.get(name, name)
        if key not in fields:
            raise TypeError(
                f"{network.__qualname__}({name}=...) has no {config.__name__} field {key!r}: add one "
                '(setting(default, rule, group="network")) or name it supplied or kept in core/factories.py'
            )
        group = fields[key].metadata.get("group")
        if group not in CONSTRUCTOR_GROUPS:
            raise TypeError(f"{config.__name__}.{key} is an argument of {network.__qualname__}, so its group must be "
                            f"one of {', '.join(CONSTRUCTOR_GROUPS)}, not {group!r}")  # fmt: skip
        out[name] = key
    return out


def shaping(config: type, *arguments: Mapping[str, str]) -> tuple[str, ...]:
    """The fields of the "network" group among these {argument: field} maps, in order, each once."""
    network = set(in_group(config, "network"))
    return tuple(dict.fromkeys(k for args in arguments for k in args.values() if k in network))


GENERATOR_ARGS = config_arguments(Generator, GANConfig, supplied=("cond_dim",))
DISCRIMINATOR_ARGS = config_arguments(
    Discriminator, GANConfig, supplied=("cond_dim",), renamed={"plan": "d_plan", "residual_init": "d_residual_init"}
)
SPEECH_ENCODER_ARGS = config_arguments(SpeechEncoder, EncoderConfig, supplied=("n_mels",), kept=("kernel", "stride"))
IMAGE_ENCODER_ARGS = config_arguments(
    build_image_encoder, EncoderConfig, supplied=("weights",), renamed={"kind": "image_encoder"}
)
GENERATOR_SETTINGS = shaping(GANConfig, GENERATOR_ARGS)
DISCRIMINATOR_SETTINGS = shaping(GANConfig, DISCRIMINATOR_ARGS)
GAN_MODEL_SETTINGS = shaping(GANConfig, GENERATOR_ARGS, DISCRIMINATOR_ARGS)
ENCODER_MODEL_SETTINGS = shaping(EncoderConfig, SPEECH_ENCODER_ARGS, IMAGE_ENCODER_ARGS)


def _values(config: Any, arguments: Mapping[str, str]) -> dict[str, Any]:
    return {name: getattr(config, key) for name, key in arguments.items()}


def generator_args(config: GANConfig, cond_dim: int) -> dict[str, Any]:
    return {"cond_dim": cond_dim, **_values(config, GENERATOR_ARGS)}


def build_generator(args: dict[str, Any]) -> Generator:
    return Generator(**args)


def build_discriminator(config: GANConfig, cond_dim: int) -> Discriminator:
    return Discriminator(cond_dim, **_values(config, DISCRIMINATOR_ARGS))


def build_speech_encoder(args: dict[str, Any]) -> SpeechEncoder:
    return SpeechEncoder(**{**args, "conv_channels": tuple(args["conv_channels"])})


@dataclass
class Encoders:
    """The speech encoder and the image encoder it was trained against, with the arguments that rebuild them."""

    speech: SpeechEncoder
    image: nn.Module
    speech_args: dict[str, Any]
    image_args: dict[str, Any]


def _image_encoder(args: dict[str, Any], weights: str) -> nn.Module:
    try:
        return build_image_encoder(**args, weights=weights)
    except FileNotFoundError as e:
        raise UserError(str(e)) from None


def build_encoders(config: EncoderConfig, n_mels: int, image_weights: str = "") -> Encoders:
    speech_args = {"n_mels": n_mels, **_values(config, SPEECH_ENCODER_ARGS)}
    speech_args["conv_channels"] = list(speech_args["conv_channels"])  # as JSON and the checkpoint keep it
    image_args = _values(config, IMAGE_ENCODER_ARGS)
    image = _image_encoder(image_args, image_weights or config.image_weights)  # first: it draws from the RNG first
    return Encoders(build_speech_encoder(speech_args), image, speech_args, image_args)


def load_encoders(run_dir: str | Path, image_weights: str = "") -> tuple[Encoders, dict[str, Any]]:
    """A `train-encoder` run's selected encoders (eval mode), rebuilt from the arguments stored beside them."""
    path = Path(run_dir) / checkpoints.ENCODER_BEST
    ckpt = checkpoints.load(path, "encoder")
    speech = build_speech_encoder(ckpt["speech_args"])
    speech.load_state_dict(ckpt["speech_encoder"])
    image = _image_encoder(ckpt["image_args"], image_weights or ckpt.get("image_weights", ""))
    missing, unexpected = image.load_state_dict(ckpt["image_encoder"], strict=False)
    if unexpected or any(not k.startswith("backbone.") for k in missing):
        raise UserError(f"{path}: image encoder weights do not fit {ckpt['image_args']}")
    return Encoders(speech.eval(), image.eval(), ckpt["speech_args"], ckpt["image_args"]), ckpt
