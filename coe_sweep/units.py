"""Units as people write and read them: byte sizes ('2GB', '512MiB'), FLOPs and counts ('1e13', '2.5e12').

The one home of these parsers and formatters: the spec (`budget.max_memory`), the planner's reasons and
tables, the CLI and the dashboard all use them. Budget labels are `format_number` of the level, so that
function's output is part of a trial's identity: never change it.
"""

from __future__ import annotations

import math
import re

_BYTE_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
               "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_BYTES_RE = re.compile(r"^\s*(?P<num>[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*(?P<unit>(?:[kmgt]i?)?b?)\s*$",
                       re.IGNORECASE)
BYTES_PATTERN = r"^[0-9]*\.?[0-9]+([eE][+-]?[0-9]+)? ?([kKmMgGtT][iI]?)?[bB]?$"  # the same, for OpenAPI
BYTES_ACCEPTED = ("a positive size in bytes: an integer, or a number with a unit such as '2GB', '512MiB', "
                  "'1.5GiB', 2e9 (units B, KB, MB, GB, TB, KiB, MiB, GiB, TiB; K, M, G, T mean KB ... TB)")


def parse_bytes(value: object, name: str | None = None) -> int:
    """`2GB` -> 2_000_000_000, `512MiB` -> 512 * 2**20, `1.5 G` -> 1_500_000_000, ints (and integral floats)
    are bytes. Anything else raises ValueError: `{name}={value!r} is invalid: expected ...` when `name` is
    given, else just what is accepted (the spec schema adds the field and the line itself)."""
    size: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        size = float(value) if not isinstance(value, float) or value.is_integer() else None
    elif isinstance(value, str) and (match := _BYTES_RE.match(value)):
        unit = match["unit"].lower()
        if unit and not unit.endswith("b"):
            unit += "b"
        size = float(match["num"]) * _BYTE_UNITS[unit]
    if size is None or not math.isfinite(size) or size < 1:
        accepted = BYTES_ACCEPTED if size is None or math.isfinite(size) else f"a finite size: {BYTES_ACCEPTED}"
        raise ValueError(accepted if name is None else f"{name}={value!r} is invalid: expected {accepted}")
    return int(size)


def format_bytes(value: float | None) -> str:
    """Binary units, 3 significant digits: 1284288 -> '1.22 MiB'; None or NaN -> '-'."""
    if value is None or not math.isfinite(value):
        return "-"
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(value) >= size:
            return f"{value / size:.3g} {unit}"
    return f"{value:.0f} B"


def format_number(value: float) -> str:
    """1e13 -> '1e13', 3e13 -> '3e13', 2.5e12 -> '2.5e12', 300 -> '300' (budget labels: see the docstring)."""
    if value == 0 or abs(value) < 1e4:
        return f"{value:g}"
    exponent = math.floor(math.log10(abs(value)))
    mantissa = round(value / 10**exponent, 6)
    if mantissa >= 10:
        mantissa, exponent = mantissa / 10, exponent + 1
    return f"{mantissa:g}e{exponent}"


def format_count(value: float) -> str:
    """3 significant digits, exponent without '+': 189504 -> '1.9e5', 0.00316 -> '0.00316', 42 -> '42'."""
    if float(value).is_integer() and abs(value) < 1e4:
        return str(int(value))
    if 1e-3 <= abs(value) < 1e4:
        return f"{value:.3g}"
    return format_number(float(f"{value:.3g}"))


def format_flops(value: float | None) -> str:
    """FLOPs in a table cell: 2.1e12 -> '2.10e+12'; None or 0 -> '-'."""
    return "-" if not value else f"{value:.2e}"


def format_elapsed(seconds: float | None) -> str:
    """Elapsed time and ETAs: 70 -> '1m10s', 3700 -> '1h01m'; None -> '?'."""
    if seconds is None:
        return "?"
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"
