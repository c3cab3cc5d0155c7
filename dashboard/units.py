"""Parsing of human byte sizes ('2GB', '512MiB', '1.5e9') for `max_memory` in the API and the CLI."""

from __future__ import annotations

import math
import re

_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_RE = re.compile(r"^\s*(?P<num>[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*(?P<unit>(?:[kmgt]i?)?b?)\s*$", re.IGNORECASE)
BYTES_PATTERN = r"^[0-9]*\.?[0-9]+([eE][+-]?[0-9]+)? ?([kKmMgGtT][iI]?)?[bB]?$"  # documented in OpenAPI
ACCEPTED = "a positive size in bytes, optionally with a unit: 2000000000, 2e9, 2GB, 1.5GiB, 512MB"


def parse_bytes(text: str) -> float:
    """'2GB' -> 2e9, '1GiB' -> 2**30, '3e9' -> 3e9; ValueError naming the value otherwise."""
    match = _RE.match(str(text))
    if match is None:
        raise ValueError(f"max_memory={text!r} is invalid: expected {ACCEPTED}")
    unit = match["unit"].lower()
    if unit and not unit.endswith("b"):
        unit += "b"
    value = float(match["num"]) * _UNITS[unit]
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"max_memory={text!r} is invalid: expected {ACCEPTED}")
    return value


def format_bytes(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(value) >= size:
            return f"{value / size:.2f} {unit}"
    return f"{value:.0f} B"
