"""Dataclass fields that carry their own rules: the one description of a config field.

`spec_field(default, doc, ge=..., le=..., check=...)` puts a field's description and rules in its metadata.
The dataclass validates itself with them when built (`validate_fields`, called from `__post_init__`), and
coe_sweep.spec generates the YAML schema's sections from the same fields (`field_docs`), so a bound or a
description is written once. Supported types: int, float, str, bool, Literal[...] and `X | None`.
"""

from __future__ import annotations

import math
import operator
import typing
from collections.abc import Callable, Mapping
from dataclasses import MISSING, Field, field, fields
from typing import Any, Literal, cast


def spec_field(default: Any, doc: str, **rules: Any) -> Any:
    """A dataclass field whose metadata holds its description and rules: ge, gt, le, lt (numbers),
    min_length, max_length (strings) and check (a function value -> what is accepted, or None when valid)."""
    return field(default=default, metadata={"doc": doc, **rules})


def _bounds_text(rules: Mapping[str, Any]) -> str:
    lo = ("[", rules["ge"]) if "ge" in rules else ("(", rules["gt"]) if "gt" in rules else None
    hi = ("]", rules["le"]) if "le" in rules else (")", rules["lt"]) if "lt" in rules else None
    if lo and hi:
        return f" in {lo[0]}{_num(lo[1])}, {_num(hi[1])}{hi[0]}"
    if lo:
        return f" {'>=' if lo[0] == '[' else '>'} {_num(lo[1])}"
    if hi:
        return f" {'<=' if hi[0] == ']' else '<'} {_num(hi[1])}"
    return ""


def _num(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


_BOUND_RULES: Mapping[str, Callable[[Any, Any], Any]] = {
    "ge": operator.ge, "gt": operator.gt, "le": operator.le, "lt": operator.lt}


def field_problem(f: Field[Any], hint: Any, value: Any) -> str | None:
    """What field `f` (type `hint`) accepts when `value` is not valid for it, else None."""
    args = typing.get_args(hint)
    optional = type(None) in args
    if optional:
        if value is None:
            return None
        hint = next(a for a in args if a is not type(None))
    rules = f.metadata
    prefix = "null or " if optional else ""
    if typing.get_origin(hint) is Literal:
        choices = typing.get_args(hint)
        return None if value in choices else f"{prefix}one of {', '.join(map(str, choices))}"
    if hint is int or hint is float:
        is_int = isinstance(value, int) and not isinstance(value, bool)
        ok = is_int if hint is int else (is_int or isinstance(value, float)) and math.isfinite(value)
        for rule, holds in _BOUND_RULES.items():
            ok = ok and (rule not in rules or bool(holds(value, rules[rule])))
        kind = "an integer" if hint is int else "a number"
        return None if ok else f"{prefix}{kind}{_bounds_text(rules)}"
    if hint is str:
        lo, hi = rules.get("min_length", 0), rules.get("max_length", math.inf)
        if not isinstance(value, str) or not lo <= len(value) <= hi:
            return f"{prefix}a string of {lo} to {hi} characters" if hi < math.inf else f"{prefix}a non-empty string"
        check = cast("Callable[[str], str | None] | None", rules.get("check"))
        return None if check is None else check(value)
    if hint is bool:
        return None if isinstance(value, bool) else "true or false"
    raise TypeError(f"field {f.name}: unsupported annotation {hint!r}")


def validate_fields(obj: Any) -> None:
    """Raise ValueError naming the first field of dataclass `obj` whose value breaks its rules."""
    hints = typing.get_type_hints(type(obj))
    for f in fields(obj):
        value = getattr(obj, f.name)
        if (accepted := field_problem(f, hints[f.name], value)) is not None:
            raise ValueError(f"{type(obj).__name__}.{f.name}={value!r} is invalid: expected {accepted}")


def field_docs(cls: type) -> dict[str, tuple[Field[Any], Any]]:
    """Field name -> (dataclass Field, resolved type hint): what the spec schema generates sections from."""
    hints = typing.get_type_hints(cls)
    return {f.name: (f, hints[f.name]) for f in fields(cls)}


def field_default(f: Field[Any]) -> Any:
    assert f.default is not MISSING, f"{f.name} needs a default"
    return f.default
