"""Spec problems as values: `SpecIssue` (where, which field, found, accepted), `SpecError` (what loading
raises), and the translation of pydantic's validation errors into (field path, found, expected).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from coe_sweep.spec.schema import model_for_path

MAX_REPORTED_ISSUES = 10

Loc = tuple[str | int, ...]
Issue = tuple[tuple[Any, ...], str, str]  # (field path, found, expected)


@dataclass(frozen=True)
class SpecIssue:
    """One problem: where (`line`, or the `--set` key), which field, what was found, what is accepted."""

    path: str
    found: str
    expected: str
    line: int = 0
    override: str | None = None

    def render(self, file: str) -> str:
        where = f"{file}: --set {self.override}" if self.override else f"{file}:{self.line}"
        field = "" if self.override == self.path else f" {self.path or '<document>'}:"
        return f"{where}:{field} found {self.found}; expected {self.expected}"


class SpecError(ValueError):
    """A spec that cannot be used. `str(err)` is one `FILE:LINE: field: found ...; expected ...` per issue."""

    def __init__(self, file: str, issues: Sequence[SpecIssue]) -> None:
        self.file = file
        self.issues = list(issues)
        shown = [issue.render(file) for issue in self.issues[:MAX_REPORTED_ISSUES]]
        if len(self.issues) > MAX_REPORTED_ISSUES:
            shown.append(f"... and {len(self.issues) - MAX_REPORTED_ISSUES} more")
        super().__init__("\n".join(shown))


class Issues(Exception):
    """Internal: issues found by one phase, rendered into a SpecError by `load_spec`."""

    def __init__(self, issues: list[tuple[Loc, str, str]]) -> None:
        super().__init__(issues)
        self.issues = issues


def format_path(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def show(value: Any) -> str:
    if isinstance(value, float) and (abs(value) >= 1e6 or 0 < abs(value) < 1e-4):
        return f"{value:g}"
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def split_key(key: str) -> list[str | int]:
    parts: list[str | int] = []
    for segment in key.split("."):
        match = re.fullmatch(r"([^\[\]]*)((?:\[\d+\])*)", segment)
        if match is None or (not match.group(1) and not match.group(2)):
            raise ValueError(segment)
        if match.group(1):
            parts.append(match.group(1))
        parts.extend(int(i) for i in re.findall(r"\[(\d+)\]", match.group(2)))
    return parts


_TYPE_EXPECTED = {
    "int_type": "an integer", "int_from_float": "an integer", "int_parsing": "an integer",
    "float_type": "a number", "float_parsing": "a number", "bool_type": "true or false",
    "string_type": "a string", "list_type": "a list", "dict_type": "a mapping", "model_type": "a mapping",
    "model_attributes_type": "a mapping", "finite_number": "a finite number (not NaN or infinity)",
    "missing": "a value (this field is required)",
}


def from_pydantic(err: Any) -> tuple[Loc, str, str]:
    loc: Loc = tuple(err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden":
        holder = model_for_path(loc[:-1])
        accepted = ", ".join(holder.model_fields) if holder is not None else "none"
        return loc, f"unknown field {loc[-1]!r}", f"one of the fields: {accepted}"
    found = "nothing" if kind == "missing" else show(err.get("input"))
    if kind in _TYPE_EXPECTED:
        expected = _TYPE_EXPECTED[kind]
    elif kind == "literal_error":
        expected = f"one of {err['ctx']['expected']}"
    else:
        expected = str(err["msg"])
        for prefix in ("Value error, ", "Assertion failed, ", "Input should be "):
            expected = expected.removeprefix(prefix)
        if expected.startswith("@"):  # schema.at(): the check is about a field below `loc`
            sub, _, expected = expected[1:].partition("@")
            value = err.get("input")
            for part in split_key(sub.lstrip(".")) if not sub.startswith("[") else [int(sub[1:-1])]:
                loc += (part,)
                value = value.get(part) if isinstance(value, dict) else (
                    value[part] if isinstance(value, list) and isinstance(part, int) and part < len(value) else None)
            found = show(value)
    return loc, found, expected
