"""Settings tables in layers: a TOML file, the files it `extends`, then overrides; every value keeps the name of
where it was set (`cub.toml [gan].ngf`, `--set gan.ngf`), so a bad one is reported there. `build_section` turns a
table into a typed dataclass: `--set` strings are parsed by the field's type, `Literal` fields take only their
choices, and the class's own checks (`s2ikit.utils.checks`) run with the value's origin in the message.
"""

from __future__ import annotations

import sys
import typing
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any, Literal

from s2ikit.utils.checks import SettingError, not_one_of
from s2ikit.utils.errors import UserError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

Tagged = dict[str, dict[str, tuple[Any, str]]]  # section -> key -> (value, where it was set)


def read_layers(path: Path, find: Callable[[str, Path], Path], sections: Collection[str], _seen: tuple = ()) -> Tagged:
    """The tables of the TOML file at `path` on top of those of the presets its top-level `extends` names (one
    name, or a list applied in order: `extends = ["cub", "cpu"]` is cub with the cpu overlay; recursively;
    `find(NAME, path)` locates each). A key of the child replaces its parents', table by table."""
    chain = (*_seen, path.resolve())
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{path}: not valid TOML: {e}") from None
    parents = raw.pop("extends", [])
    parents = [parents] if isinstance(parents, str) else parents
    tables: Tagged = {}
    if not isinstance(parents, list) or not all(isinstance(p, str) for p in parents):
        raise UserError(f"{path}: extends must be a preset name or .toml path, or a list of them, got {parents!r}")
    for parent in parents:  # in order: a later parent's keys replace an earlier one's
        parent_path = find(parent, path)
        if parent_path.resolve() in chain:
            cycle = " -> ".join(p.name for p in (*chain, parent_path.resolve()))
            raise UserError(f"{path}: extends '{parent}' makes a cycle ({cycle})")
        for section, table in read_layers(parent_path, find, sections, chain).items():
            tables.setdefault(section, {}).update(table)
    for section, table in raw.items():
        if section not in sections:
            raise UserError(f"{path}: unknown section [{section}] (known: {', '.join(sections)})")
        if not isinstance(table, dict):
            raise UserError(f"{path}: {section} must be a [{section}] table (only extends may stand above the tables)")
        tagged = tables.setdefault(section, {})
        for key, value in table.items():
            tagged[key] = (value, f"{path} [{section}].{key}")
    return tables


def add_overrides(
    tables: Tagged, overrides: Mapping[str, Mapping[str, Any]], sections: Collection[str], flags: Mapping[str, str]
) -> None:
    """Put `{"section": {"key": value}}` on top of `tables`, each named by its flag in `flags` ("gan.ngf" ->
    "--ngf") or else as `--set section.key`."""
    for section, table in overrides.items():
        for key, value in table.items():
            label = flags.get(f"{section}.{key}", f"--set {section}.{key}")
            if section not in sections:
                raise UserError(f"{label}: unknown section [{section}] (known: {', '.join(sections)})")
            tables.setdefault(section, {})[key] = (value, label)


def coerce(value: Any, hint: Any, where: str) -> Any:
    """`value` (a TOML value, or a `--set` string) as the field type `hint`; a one-line error naming `where`."""
    origin = typing.get_origin(hint)
    if origin is tuple:
        if isinstance(value, str):  # --set tts.length_scales=0.9,1.1
            value = [v for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise UserError(f"{where}: expected a list, got {value!r}")
        (item, *_rest) = typing.get_args(hint)
        return tuple(coerce(v, item, where) for v in value)
    if origin is Literal:
        allowed = typing.get_args(hint)
        if value not in allowed:
            raise UserError(f"{where}: {not_one_of(value, allowed)}")
        return value
    if hint is bool:
        if isinstance(value, str):
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
        if isinstance(value, bool):
            return value
        raise UserError(f"{where}: expected true/false, got {value!r}")
    if hint in (int, float, str):
        try:
            if isinstance(value, bool) or (hint is str and not isinstance(value, str)):
                raise TypeError  # `true` for a number, or a number or list for a name, is a mistake, not a value
            if hint is int and isinstance(value, float) and not value.is_integer():
                raise ValueError
            return hint(value)
        except (TypeError, ValueError):
            raise UserError(f"{where}: expected {hint.__name__}, got {value!r}") from None
    return value


def build_section(cls: type, table: Mapping[str, Any], where: str, origins: Mapping[str, str] | None = None) -> Any:
    """Make a `cls` from a table. Each key is named by `origins[key]`, else `where.key`; unknown keys, wrong
    types and values the class refuses are one-line errors with that name."""
    origins = origins or {}

    def name(key: str) -> str:
        return origins.get(key) or f"{where}.{key}" + ("" if key in table else " (default)")

    hints = typing.get_type_hints(cls)
    unknown = sorted(set(table) - set(hints))
    if unknown:
        raise UserError(f"{name(unknown[0])}: unknown key (known: {', '.join(sorted(hints))})")
    values = {k: coerce(v, hints[k], name(k)) for k, v in table.items()}
    try:
        return cls(**values)
    except SettingError as e:
        # Of the keys a problem involves, name the one given on the command line, if any: that is what changed.
        key = next((k for k in (e.key, *e.related) if origins.get(k, "").startswith("--")), e.key)
        problem = e.problem if key == e.key else f"{e.key} {e.problem}"
        raise UserError(f"{name(key)}: {problem}") from None
