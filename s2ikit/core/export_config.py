"""The schema of an exported folder's `config.json`: every key, its type and its range, checked before anything
is built from it.

An export comes from someone else, so its config is input, not trusted state: each value that sizes a network
or a feature pass is bounded (a width of 10^9 is refused here, not allocated), the networks it describes are
counted on the meta device (no memory) against a budget, and each weight file's path must stay inside the
folder (no absolute path, no `..`, no symbolic link leading out). A problem is one line naming the file and the
key: `EXPORT/config.json: generator_args.ngf: expected an integer in [1, 256], got 1000000000`.
"""

from __future__ import annotations

import json
import math
import re
import typing
from collections.abc import Callable
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import torch
from torch import nn

from s2ikit.config import FeatureConfig, GANConfig, TTSConfig
from s2ikit.core.factories import build_generator, build_speech_encoder
from s2ikit.models.generator import CONDITIONS, POSES
from s2ikit.utils.errors import UserError

MAX_CONFIG_BYTES = 1 << 20  # config.json is a few kB; a larger one is not an export's
# Each network an export describes may hold at most this many parameters (2 GB in float32): far above any
# Fusion-S2iGan configuration (the paper's 256 px generator has about 20 million), far below what would
# exhaust a machine before the weights are even read.
MAX_PARAMETERS = 500_000_000
BIG = 10**12  # steps and counts: any real value, but a number JSON cannot blow up into a huge allocation


# (weight name, its config key, the factory that builds it)
NETWORKS = (("generator", "generator_args", build_generator), ("speech_encoder", "speech_args", build_speech_encoder))


class Invalid(Exception):
    """A value the schema refuses: `key` is its dotted path in config.json."""

    def __init__(self, key: str, problem: str):
        super().__init__(f"{key}: {problem}")
        self.key, self.problem = key, problem


Check = Callable[[Any, str], Any]  # (value, its dotted key) -> the value, or raise Invalid


def _shown(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, float) or math.isfinite(value) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def integer(low: int, high: int, *, even: bool = False) -> Check:
    what = f"an {'even ' if even else ''}integer in [{low}, {high}]"

    def check(value: Any, key: str) -> int:
        # bool is an int to Python but `true` is not a width
        if type(value) is not int or not low <= value <= high or (even and value % 2):
            raise Invalid(key, f"expected {what}, got {_shown(value)}")
        return value

    return check


def number(low: float, high: float, *, above: bool = False, below: bool = False) -> Check:
    what = f"a number in {'(' if above else '['}{low}, {high}{')' if below else ']'}"

    def check(value: Any, key: str) -> float:
        ok = type(value) in (int, float) and math.isfinite(value)
        ok = ok and (low < value if above else low <= value) and (value < high if below else value <= high)
        if not ok:
            raise Invalid(key, f"expected {what}, got {_shown(value)}")
        return value

    return check


def one_of(*choices: Any) -> Check:
    def check(value: Any, key: str) -> Any:
        if type(value) not in (str, int) or value not in choices:
            raise Invalid(key, f"expected one of {'|'.join(map(str, choices))}, got {_shown(value)}")
        return value

    return check


def literal(cls: type, field: str) -> Check:
    """The values a settings class's `Literal` field allows (one source of truth: config.py)."""
    return one_of(*typing.get_args(typing.get_type_hints(cls)[field]))


def text(longest: int = 200, pattern: str | None = None) -> Check:
    what = f"text of at most {longest} characters" + (f" matching {pattern}" if pattern else "")

    def check(value: Any, key: str) -> str:
        bad = not isinstance(value, str) or len(value) > longest or any(ord(c) < 32 for c in value)
        if bad or (pattern and not re.fullmatch(pattern, value)):
            raise Invalid(key, f"expected {what}, got {_shown(value)}")
        return value

    return check


def flag(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise Invalid(key, f"expected true or false, got {_shown(value)}")
    return value


def nullable(check: Check) -> Check:
    return lambda value, key: None if value is None else check(value, key)


def listing(item: Check, shortest: int, longest: int) -> Check:
    def check(value: Any, key: str) -> list[Any]:
        if not isinstance(value, list) or not shortest <= len(value) <= longest:
            count = str(shortest) if shortest == longest else f"{shortest} to {longest}"
            raise Invalid(key, f"expected a list of {count} values, got {_shown(value)}")
        return [item(v, f"{key}[{i}]") for i, v in enumerate(value)]

    return check


def any_object(value: Any, key: str) -> dict[str, Any]:
    """A JSON object shown or recorded but never built from (the file's size bounds it)."""
    if not isinstance(value, dict):
        raise Invalid(key, f"expected an object, got {_shown(value)}")
    return value


def table(fields: dict[str, Check], optional: tuple[str, ...] = (), other: Check | None = None) -> Check:
    """A JSON object with these keys (all but `optional` required); keys not listed are refused unless `other`
    checks them."""

    def check(value: Any, key: str) -> dict[str, Any]:
        prefix = f"{key}." if key else ""
        if not isinstance(value, dict):
            raise Invalid(key or "config", f"expected an object, got {_shown(value)}")
        missing = [k for k in fields if k not in value and k not in optional]
        if missing:
            raise Invalid(prefix + missing[0], "missing")
        out = {}
        for k, v in value.items():
            if k in fields:
                out[k] = fields[k](v, prefix + k)
            elif other is not None:
                out[k] = other(v, prefix + k)
            else:
                raise Invalid(prefix + k, f"unknown key (known: {', '.join(fields)})")
        return out

    return check


def mapping(item: Check) -> Check:
    def check(value: Any, key: str) -> dict[str, Any]:
        if not isinstance(value, dict) or len(value) > 16:
            raise Invalid(key, f"expected an object of at most 16 entries, got {_shown(value)}")
        return {k: item(v, f"{key}.{k}") for k, v in value.items()}

    return check


GENERATOR_ARGS = table(
    {
        "cond_dim": integer(1, 4096),
        "image_size": one_of(32, 64, 128, 256),  # Generator's channel plan covers these
        "ngf": integer(1, 256),
        "z_dim": integer(1, 1024),
        "block": literal(GANConfig, "block"),
        "modules": literal(GANConfig, "modules"),
        "fusion": literal(GANConfig, "fusion"),
        "attention": literal(GANConfig, "attention"),
        "smm_hidden": integer(0, 4096),  # 0: each fusion module's channel count
        "condition": one_of(*CONDITIONS),
        "output_symmetry": one_of(*POSES),
    },
    optional=("smm_hidden", "condition", "output_symmetry"),  # Generator's defaults stand for them
)
SPEECH_ARGS = table(
    {
        "n_mels": integer(1, 512),
        "embed_dim": integer(2, 4096, even=True),  # two GRU directions of embed_dim / 2
        "conv_channels": listing(integer(1, 2048), 2, 2),
        "rnn_layers": integer(1, 8),
        "attention_hidden": integer(1, 4096),
        "dropout": number(0, 1, below=True),
        "kernel": integer(1, 64),
        "stride": integer(1, 64),
    },
    optional=("kernel", "stride"),  # SpeechEncoder's defaults stand for them
)
FEATURES = table(
    {
        "sample_rate": integer(1000, 384_000),
        "n_mels": integer(1, 512),
        "n_fft": integer(16, 16384),
        "win_length": integer(1, 16384),
        "hop_length": integer(1, 16384),
        "window": literal(FeatureConfig, "window"),
        "power": number(0, 4, above=True),
        "center": flag,
        "log_offset": number(0, 1, above=True),
        "normalize": literal(FeatureConfig, "normalize"),
        "dtype": literal(FeatureConfig, "dtype"),
    }
)
TTS = table(
    {
        "backend": text(64),
        "voice": text(4096),
        "coqui_model": text(4096),
        "coqui_vocoder": text(4096),
        "device": literal(TTSConfig, "device"),
        "voices": listing(text(4096), 0, 256),
        "length_scales": listing(number(0, 10, above=True), 1, 16),
        "pitches": listing(number(0, 10, above=True), 1, 16),
        "formant_shifts": listing(number(0.5, 2), 1, 16),
        "rooms": listing(number(0, 2), 1, 16),
        "room_drrs": listing(number(-10, 30), 1, 16),
        "noise_scale": number(0, 10),
        "noise_w": number(0, 10),
        "threads": integer(1, 256),
    },
    optional=("formant_shifts", "rooms", "room_drrs"),  # exports written before the setting existed
)
COUNT = integer(0, BIG)
DATASET = table(
    {
        "name": text(200),
        "image_size": integer(1, 1 << 16),
        "classes": COUNT,
        "splits": mapping(table({"samples": COUNT, "captions": COUNT})),
    },
    optional=("image_size", "classes", "splits"),  # the writer knows only the name when the data set is gone
)
STOPPED = table({"reason": text(64), "step": COUNT, "total_steps": COUNT}, other=lambda v, k: v)
FILE = table({"path": text(255), "sha256": text(64, "[0-9a-f]{64}")})


def schema(weights: tuple[str, ...], format_: str, version: int) -> Check:
    """config.json as a whole; `weights`: the names of the networks whose files it lists."""
    return table(
        {
            "format": one_of(format_),
            "format_version": integer(1, version),
            "s2ikit_version": text(64),
            "step": nullable(COUNT),
            "dataset": DATASET,
            "generator_args": GENERATOR_ARGS,
            "speech_args": SPEECH_ARGS,
            "features": FEATURES,
            "tts": nullable(TTS),
            "stopped": nullable(STOPPED),
            "training": nullable(any_object),
            "files": table(dict.fromkeys(weights, FILE)),
            "evaluation": nullable(any_object),
        }
    )


def read_config(file: Path) -> Any:
    """config.json parsed, or one line naming the file and json's message (the size is checked first)."""
    try:
        if file.stat().st_size > MAX_CONFIG_BYTES:
            raise UserError(f"{file}: {file.stat().st_size} bytes, more than a config.json holds ({MAX_CONFIG_BYTES})")
        return json.loads(file.read_bytes())
    except json.JSONDecodeError as e:
        raise UserError(f"{file}: not valid JSON ({e})") from None
    except UnicodeDecodeError as e:
        raise UserError(f"{file}: not valid JSON (not UTF-8 text: {e.reason} at byte {e.start})") from None
    except RecursionError:
        raise UserError(f"{file}: not valid JSON (nested too deeply)") from None
    except OSError as e:
        raise UserError(f"{file}: cannot be read ({e.strerror or e})") from None


def validate(
    config: Any, file: Path, weights: tuple[str, ...], format_: str, version: int
) -> tuple[dict[str, Any], dict[str, int]]:
    """The checked config and the number of values in each network's state dict (by weight name); one UserError
    line naming `file` and the key otherwise. The format and its version are checked first, so a newer export is
    told to upgrade s2ikit rather than listed key by key."""
    if not isinstance(config, dict):
        raise UserError(f"{file}: not an `s2ikit export` config (a JSON object expected, got {_shown(config)})")
    if config.get("format") != format_:
        got = f"got {_shown(config['format'])}" if "format" in config else "missing"
        raise UserError(f"{file}: format: {got}; an `s2ikit export` config has format {format_!r}")
    found = config.get("format_version")
    if type(found) is int and found > version:
        raise UserError(f"{file}: export format {found} is newer than this s2ikit reads ({version}); upgrade s2ikit")
    try:
        config = schema(weights, format_, version)(config, "")
        _agree(config)
    except Invalid as e:
        raise UserError(f"{file}: {e}") from None
    sizes = {name: _check_size(config[key], build, f"{file}: {key}") for name, key, build in NETWORKS}
    return config, sizes


def _agree(config: dict[str, Any]) -> None:
    """The keys that must agree across sections: the networks are fed one another's outputs."""
    generator, speech, features = config["generator_args"], config["speech_args"], config["features"]
    if generator["cond_dim"] != speech["embed_dim"]:
        raise Invalid("generator_args.cond_dim", f"must equal speech_args.embed_dim ({speech['embed_dim']}), "
                                                 f"got {generator['cond_dim']}")  # fmt: skip
    if features["n_mels"] != speech["n_mels"]:
        raise Invalid("features.n_mels", f"must equal speech_args.n_mels ({speech['n_mels']}), "
                                         f"got {features['n_mels']}")  # fmt: skip
    if features["win_length"] > features["n_fft"]:
        raise Invalid("features.win_length", f"must not exceed features.n_fft ({features['n_fft']}), "
                                             f"got {features['win_length']}")  # fmt: skip


def state_size(args: dict[str, Any], build: Callable[[dict[str, Any]], nn.Module]) -> int:
    """How many values the state dict of the network `args` describes holds (parameters and buffers), counted on
    the meta device: nothing is allocated and no random number is drawn."""
    from torch.distributions import Distribution

    # Generator draws its pose quantiles through a Normal whose argument check reads a value, which a meta
    # tensor does not have; the check is off only while the meta copy is built
    validating = Distribution._validate_args
    Distribution.set_default_validate_args(False)
    try:
        with torch.device("meta"):
            network = build(args)
    finally:
        Distribution.set_default_validate_args(validating)
    return sum(t.numel() for t in network.state_dict().values())


def _check_size(args: dict[str, Any], build: Callable[[dict[str, Any]], nn.Module], where: str) -> int:
    try:
        count = state_size(args, build)
    except (ValueError, TypeError, RuntimeError) as e:  # the network's own refusal of a combination
        raise UserError(f"{where}: does not describe a network s2ikit builds ({str(e).splitlines()[0]})") from None
    if count > MAX_PARAMETERS:
        raise UserError(f"{where}: describes a network of {count:,} parameters ({4 * count / 1e9:.1f} GB), more "
                        f"than an export may hold ({MAX_PARAMETERS:,})")  # fmt: skip
    return count


def confined(folder: Path, name: str, key: str, within: Path | None = None) -> Path:
    """`folder / name` when `name` is a relative path that stays inside `folder` (or `within`, a folder above it)
    once resolved (symbolic links included); otherwise an Invalid naming `key`."""
    if PurePosixPath(name).is_absolute() or PureWindowsPath(name).is_absolute() or PureWindowsPath(name).drive:
        raise Invalid(key, f"must be a file inside the export folder, got the absolute path {_shown(name)}")
    if ".." in PurePosixPath(name.replace("\\", "/")).parts:
        raise Invalid(key, f"must be a file inside the export folder, got {_shown(name)} (it climbs out with ..)")
    path = folder / name
    inside = (folder if within is None else within).resolve()
    try:
        path.resolve().relative_to(inside)
    except ValueError:
        raise Invalid(key, f"{_shown(name)} leads outside the export folder (to {path.resolve()})") from None
    return path
