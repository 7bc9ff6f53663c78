"""Networks built from typed configs, and rebuilt from the arguments a checkpoint stores.

The settings that shape a network (and so its state dict) are named here once: a resume whose saved config
differs in one of them is refused, since the saved weights cannot fit the network the new config builds.
"""

from __future__ import annotations

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
from s2ikit.utils.errors import UserError

GENERATOR_SETTINGS = (
    "image_size", "ngf", "z_dim", "block", "modules", "fusion", "attention", "smm_hidden", "condition",
    "output_symmetry",
)  # fmt: skip
DISCRIMINATOR_SETTINGS = ("image_size", "ndf", "d_plan")
GAN_MODEL_SETTINGS = tuple(dict.fromkeys(GENERATOR_SETTINGS + DISCRIMINATOR_SETTINGS))
ENCODER_MODEL_SETTINGS = (
    "embed_dim", "conv_channels", "rnn_layers", "attention_hidden", "dropout", "image_encoder", "cnn_width",
)  # fmt: skip


def generator_args(config: GANConfig, cond_dim: int) -> dict[str, Any]:
    return {"cond_dim": cond_dim, **{k: getattr(config, k) for k in GENERATOR_SETTINGS}}


def build_generator(args: dict[str, Any]) -> Generator:
    return Generator(**args)


def build_discriminator(config: GANConfig, cond_dim: int) -> Discriminator:
    return Discriminator(cond_dim, config.image_size, config.ndf, config.d_plan, config.d_residual_init)


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
    speech_args = {
        "n_mels": n_mels,
        "embed_dim": config.embed_dim,
        "conv_channels": list(config.conv_channels),
        "rnn_layers": config.rnn_layers,
        "attention_hidden": config.attention_hidden,
        "dropout": config.dropout,
    }
    image_args = {"kind": config.image_encoder, "embed_dim": config.embed_dim, "cnn_width": config.cnn_width}
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
