"""Value rules for settings dataclasses: `@checked` gives a class a `__post_init__` that checks its `Literal`
fields and per-field rules (`at_least(1)`, `fraction`, ...), raising one `SettingError` that names the section and
key, so the preset loader can add where the value came from. A field declares its rule beside its default with
`setting(default, rule, group=...)`; the group says what the setting shapes (`GROUPS`)."""

from __future__ import annotations

import dataclasses
import functools
import typing
from collections.abc import Callable
from typing import Any, Literal

from s2ikit.utils.errors import UserError


class SettingError(UserError):
    """A value its field does not accept. `key` is the field, so the preset loader can say where it was set."""

    def __init__(self, section: str, key: str, problem: str, related: tuple[str, ...] = ()):
        super().__init__(f"{section}.{key}: {problem}")
        self.key, self.problem, self.related = key, problem, related  # related: other keys the problem involves


Rule = Callable[[Any, Any], "str | None"]  # (value, the whole config) -> the problem, or None when fine


def at_least(minimum: float) -> Rule:
    return lambda v, _: None if v >= minimum else f"must be at least {minimum}, got {v!r}"


def positive(v: Any, _: Any) -> str | None:
    return None if v > 0 else f"must be > 0, got {v!r}"


def fraction(v: Any, _: Any) -> str | None:
    return None if 0 <= v < 1 else f"must be in [0, 1), got {v!r}"


def between(low: float, high: float) -> Rule:
    return lambda v, _: None if low <= v <= high else f"must be in [{low}, {high}], got {v!r}"


def power_of_two(low: int, high: int) -> Rule:
    ok = {2**k for k in range(high.bit_length()) if low <= 2**k <= high}
    return lambda v, _: None if v in ok else f"must be a power of two in [{low}, {high}], got {v!r}"


def positive_even(v: Any, _: Any) -> str | None:
    return None if v > 0 and v % 2 == 0 else f"must be a positive even number, got {v!r}"


def at_most_field(other: str) -> Rule:
    def rule(v: Any, config: Any) -> str | None:
        limit = getattr(config, other)
        return None if v <= limit else f"must not exceed {other} ({limit!r}), got {v!r}"

    rule.related = (other,)  # type: ignore[attr-defined]
    return rule


def items(rule: Rule | None = None, count: int | None = None) -> Rule:
    """A tuple: not empty (exactly `count` values when given), and each value passes `rule`."""

    def check(values: tuple, config: Any) -> str | None:
        if not values:
            return "must not be empty"
        if count is not None and len(values) != count:
            return f"needs {count} values, got {len(values)}"
        problems = [rule(v, config) for v in values] if rule else []
        bad = next((p for p in problems if p), None)
        return f"each value {bad}" if bad else None

    return check


# What a setting shapes. "network": an argument of a network's constructor (its layers, widths, choices of
# module), which a resume may not change; "init": one that only sets starting values, which a resumed run's weights
# replace; "loss": the objective's terms and weights; "optimisation": batch, optimiser, learning-rate schedule and
# EMA; "augmentation": what is varied in the inputs; "schedule": how long, and when to log, sample and keep
# checkpoints; "data": which examples are used; "run": speed, workers and seeds.
GROUPS = ("network", "init", "loss", "optimisation", "augmentation", "schedule", "data", "run")


def setting(default: Any, rule: Rule | None = None, *, group: str | None = None) -> Any:
    """A settings field: its default, the rule `@checked` applies to its value and the group of what it shapes,
    side by side. `lr_g: float = setting(1e-4, positive, group="optimisation")`."""
    if group is not None and group not in GROUPS:
        raise TypeError(f"setting group {group!r} is not one of {', '.join(GROUPS)}")
    return dataclasses.field(default=default, metadata={"rule": rule, "group": group})


def in_group(cls: type, group: str) -> tuple[str, ...]:
    """The fields of the dataclass `cls` in `group`, in field order."""
    return tuple(f.name for f in dataclasses.fields(cls) if f.metadata.get("group") == group)


@functools.cache
def _choices(cls: type) -> dict[str, tuple[Any, ...]]:
    """The allowed values of each `Literal` field (or tuple of `Literal`s) of a dataclass."""
    out = {}
    for name, hint in typing.get_type_hints(cls).items():
        if typing.get_origin(hint) is tuple:
            hint = typing.get_args(hint)[0]
        if typing.get_origin(hint) is Literal:
            out[name] = typing.get_args(hint)
    return out


def not_one_of(value: Any, allowed: tuple[Any, ...]) -> str:
    return f"{value!r} is not one of {'|'.join(map(str, allowed))}"


@functools.cache
def _rules(cls: type) -> tuple[tuple[str, Rule], ...]:
    """The `setting(default, rule)` rules of a dataclass's fields, in field order."""
    return tuple((f.name, f.metadata["rule"]) for f in dataclasses.fields(cls) if f.metadata.get("rule"))


def checked(section: str, **rules: Rule) -> Callable[[type], type]:
    """Give a settings class a `__post_init__` that checks its `Literal` fields, the rules its fields declare with
    `setting(default, rule)` and these per-field rules, raising a `SettingError` naming `section.key`. Goes under
    `@dataclass`, which only calls a `__post_init__` it finds."""

    def decorate(cls: type) -> type:
        unknown = set(rules) - set(cls.__annotations__)
        if unknown:  # a misspelt rule would otherwise fail only when the class is first built
            raise TypeError(f"{cls.__name__}: rules for fields it does not have: {', '.join(sorted(unknown))}")
        # under @dataclass the fields are still Field objects in the class body; above it, in __dataclass_fields__
        fields = getattr(cls, "__dataclass_fields__", None) or vars(cls)
        declared = {k for k, v in fields.items() if isinstance(v, dataclasses.Field) and v.metadata.get("rule")}
        twice = declared & set(rules)
        if twice:
            raise TypeError(f"{cls.__name__}: rules given twice (field and @checked): {', '.join(sorted(twice))}")

        def __post_init__(self) -> None:
            for key, allowed in _choices(cls).items():
                value = getattr(self, key)
                for v in value if isinstance(value, tuple) else (value,):
                    if v not in allowed:
                        raise SettingError(section, key, not_one_of(v, allowed))
            for key, rule in (*_rules(cls), *rules.items()):
                problem = rule(getattr(self, key), self)
                if problem:
                    raise SettingError(section, key, problem, getattr(rule, "related", ()))

        cls.__post_init__ = __post_init__
        return cls

    return decorate
