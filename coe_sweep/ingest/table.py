"""A table of runs coe-sweep did not train (csv | parquet | jsonl) read into validated runs; nothing written.

Fields (`FIELDS`), mapped from columns by `--map FIELD=COLUMN` (a column named like a field maps
itself): params (active parameters N) and loss are required, and tokens or flops (training FLOPs);
optional: params_total, flops_per_token, iterations, top_k, n_experts, n_layers, d_model, d_expert,
dense, seed, arm, budget (a budget-level label or its FLOPs).
Derived: tokens = flops / flops_per_token and flops = tokens x flops_per_token, where
flops_per_token is the mapped column, else flops / tokens when both are given, else 6N (stated in
the import's record). Budget levels: a mapped `budget` column, else `coe_sweep.analysis.levels`
(nearest of the given `levels` within tol_log in ln FLOPs, or levels found from the runs' FLOPs);
runs off every level are kept (the parametric laws fit them) without a label.

Every problem is reported, not only the first (up to MAX_ERRORS lines), as
`FILE:LINE: FIELD (column 'COL'): found VALUE; expected WHAT` (parquet: `FILE: row N: ...`), and
`read_table` raises `ImportRefused` before anything could be written.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from coe_sweep.analysis.levels import (
    DEFAULT_TOL_LOG,
    Level,
    assign_levels,
    check_tol,
    level_label,
    nearest_level,
)

Kind = Literal["positive", "int", "bool", "str"]
FORMATS = ("csv", "parquet", "jsonl")
MAX_ERRORS = 20
MAX_ROWS = 1_000_000
SIX_N = 6.0  # FLOPs per token per parameter when nothing better is known (Kaplan et al. 2020, eq. 2.1)


@dataclass(frozen=True)
class Field:
    kind: Kind
    accepted: str
    lo: float = 0.0
    hi: float = math.inf
    model_param: str | None = None  # the model.<field> param it is logged as


FIELDS: dict[str, Field] = {
    "params": Field("positive", "active parameters: a finite number in [1, 1e15]", 1, 1e15),
    "loss": Field("positive", "a final validation loss: a finite number in (0, 100]", 0, 100),
    "tokens": Field("positive", "training tokens: a finite number in [1, 1e17]", 1, 1e17),
    "flops": Field("positive", "training FLOPs: a finite number in [1, 1e32]", 1, 1e32),
    "params_total": Field("positive", "total parameters: a finite number in [1, 1e16]", 1, 1e16),
    "flops_per_token": Field("positive", "training FLOPs per token: a finite number in [1, 1e18]", 1, 1e18),
    "iterations": Field("int", "chain iterations C: an integer in [1, 64]", 1, 64, "model.iterations"),
    "top_k": Field("int", "experts per token per iteration: an integer in [1, 4096]", 1, 4096, "model.top_k"),
    "n_experts": Field("int", "routed experts: an integer in [1, 65536]", 1, 65536, "model.n_experts"),
    "n_layers": Field("int", "layers: an integer in [1, 1024]", 1, 1024, "model.n_layers"),
    "d_model": Field("int", "model width: an integer in [1, 1048576]", 1, 1048576, "model.d_model"),
    "d_expert": Field("int", "expert width: an integer in [1, 1048576]", 1, 1048576, "model.d_expert"),
    "dense": Field("bool", "true or false", model_param="model.dense"),
    "seed": Field("int", "a seed: an integer in [0, 1000000]", 0, 1_000_000),
    "arm": Field("str", "an arm name: 1-64 characters of letters, digits, _ . - +"),
    "budget": Field("str", "a budget-level label (1-64 characters), e.g. 1e18"),
}
REQUIRED = ("params", "loss")
_ARM_RE = re.compile(r"[A-Za-z0-9_.+\-]{1,64}")
_LABEL_RE = re.compile(r"[^\x00-\x1f]{1,64}")


class ImportRefused(ValueError):
    """The file or mapping is unusable; `messages` holds one line per problem. Nothing was written."""

    def __init__(self, messages: Sequence[str]) -> None:
        shown = list(messages[:MAX_ERRORS])
        if len(messages) > MAX_ERRORS:
            shown.append(f"... and {len(messages) - MAX_ERRORS} more problem(s)")
        super().__init__("\n".join(shown))
        self.messages = list(messages)


@dataclass
class ImportedRun:
    line: int  # source line (csv, jsonl) or 1-based row (parquet)
    params: float
    params_total: float
    tokens: float
    flops: float
    flops_per_token: float
    loss: float
    seed: int
    arm: str | None
    model: dict[str, Any]  # model.<field> -> value
    budget_label: str | None = None
    budget_flops: float | None = None

    def config_key(self) -> str:
        """Identity of the run's config: everything but its seed (its seeds share it)."""
        blob = json.dumps([repr(self.params), repr(self.tokens), self.arm, sorted(self.model.items()),
                           self.budget_label], default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class ImportPlan:
    source: Path
    fmt: str
    sha256: str
    mapping: dict[str, str]
    levels: list[Level]
    tol_log: float
    given_levels: list[float] | None
    flops_rule: str
    runs: list[ImportedRun] = field(default_factory=list)

    @property
    def off_level(self) -> int:
        return sum(r.budget_label is None for r in self.runs)

    def spec_hash(self) -> str:
        blob = json.dumps([self.sha256, sorted(self.mapping.items()), self.given_levels, self.tol_log])
        return "import-" + hashlib.sha256(blob.encode()).hexdigest()[:24]

    def spec_yaml(self, sweep: str) -> str:
        import yaml

        record = {"name": sweep, "imported": {
            "source": self.source.name, "format": self.fmt, "sha256": self.sha256, "rows": len(self.runs),
            "mapping": self.mapping, "flops_per_token": self.flops_rule, "tol_log": self.tol_log,
            "levels": self.given_levels if self.given_levels is not None else "found from the runs' FLOPs",
            "budget_levels": {lv.label: lv.flops for lv in self.levels}, "off_level_runs": self.off_level}}
        return yaml.safe_dump(record, sort_keys=False)


def _where(path: Path, fmt: str, line: int) -> str:
    return f"{path}: row {line}" if fmt == "parquet" else f"{path}:{line}"


def _read(path: Path, fmt: str) -> tuple[list[dict[str, Any]], list[int], list[str]]:
    """(rows, their source lines/rows, columns); ImportRefused for unreadable files."""
    if fmt == "parquet":
        try:
            frame = pd.read_parquet(path)
        except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for a bad file; all mean 'not parquet'
            raise ImportRefused([f"{path}: not a readable parquet file ({type(exc).__name__}: {str(exc)[:200]}); "
                                 "expected a parquet table"]) from None
        return frame.to_dict(orient="records"), list(range(1, len(frame) + 1)), [str(c) for c in frame.columns]
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ImportRefused([f"{path}:{line}: found bytes that are not UTF-8 (byte {exc.start}); "
                             "expected a UTF-8 text file"]) from None
    if not text.strip():
        raise ImportRefused([f"{path}: the file is empty; expected a header line and at least one run"])
    if fmt == "jsonl":
        return _read_jsonl(path, text)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig", skip_blank_lines=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ImportRefused([f"{path}: not a well-formed CSV ({str(exc).strip()[:200]}); expected comma-separated "
                             "columns with one header line"]) from None
    lines = [i for i, ln in enumerate(text.splitlines(), start=1) if ln.strip()][1:]
    if len(lines) != len(frame):  # quoted newlines: fall back to row numbers after the header
        lines = list(range(2, len(frame) + 2))
    return frame.to_dict(orient="records"), lines, [str(c) for c in frame.columns]


def _read_jsonl(path: Path, text: str) -> tuple[list[dict[str, Any]], list[int], list[str]]:
    rows, lines, errors, columns = [], [], [], {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            errors.append(f"{path}:{number}: found malformed JSON ({exc.msg}); expected one JSON object per line")
            continue
        if not isinstance(value, dict):
            errors.append(f"{path}:{number}: found a JSON {type(value).__name__}; expected one JSON object per line")
            continue
        rows.append(value)
        lines.append(number)
        columns.update(dict.fromkeys(map(str, value)))
    if errors:
        raise ImportRefused(errors)
    return rows, lines, list(columns)


def _parse(value: Any, spec: Field) -> tuple[Any, str | None]:
    """(parsed value, None) or (None, why); an empty cell parses to (None, None)."""
    if value is None or (isinstance(value, float) and math.isnan(value) and spec.kind == "str"):
        return None, None
    if isinstance(value, str) and not value.strip():
        return None, None
    if spec.kind == "str":
        text = str(value).strip()
        pattern = _ARM_RE if spec is FIELDS["arm"] else _LABEL_RE
        return (text, None) if pattern.fullmatch(text) else (None, "not " + spec.accepted)
    if spec.kind == "bool":
        text = str(value).strip().lower()
        if isinstance(value, (bool, np.bool_)) or text in ("true", "false", "1", "0"):
            return text in ("true", "1"), None
        return None, "not true/false"
    if isinstance(value, (bool, np.bool_)):
        return None, "a boolean"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None, "not a number"
    if not math.isfinite(number):
        return None, "not finite"
    if spec.kind == "int" and not number.is_integer():
        return None, "not an integer"
    if spec.kind == "positive" and number <= 0:
        return None, "not > 0"
    if not spec.lo <= number <= spec.hi:
        return None, "out of range"
    return (int(number) if spec.kind == "int" else number), None


def resolve_mapping(columns: list[str], mapping: dict[str, str], path: Path) -> dict[str, str]:
    """field -> column: explicit `mapping`, plus columns named like a field; ImportRefused naming what is missing."""
    cols = ", ".join(columns) or "none"
    errors = [f"--map {name}=...: found {name!r}, which is not a field; expected one of {', '.join(FIELDS)}"
              for name in mapping if name not in FIELDS]
    errors += [f"--map {name}={col}: {path} has no column {col!r}; expected one of its columns: {cols}"
               for name, col in mapping.items() if name in FIELDS and col not in columns]
    resolved = {name: col for name, col in mapping.items() if name in FIELDS and col in columns}
    resolved.update({name: name for name in FIELDS if name not in mapping and name in columns})
    for name in REQUIRED:
        if name not in resolved and name not in mapping:
            errors.append(f"{path}: found no column for {name!r}; expected a column named {name!r} or --map "
                          f"{name}=COLUMN, holding {FIELDS[name].accepted} (columns: {cols})")
    if "tokens" not in resolved and "flops" not in resolved and not {"tokens", "flops"} & set(mapping):
        errors.append(f"{path}: found no column for 'tokens' or 'flops'; expected one of them, named so or mapped "
                      f"with --map tokens=COLUMN or --map flops=COLUMN (columns: {cols})")
    if errors:
        raise ImportRefused(errors)
    return resolved


def _row_run(row: dict[str, Any], line: int, resolved: dict[str, str], where: str,
             errors: list[str]) -> ImportedRun | None:
    values: dict[str, Any] = {}
    before = len(errors)
    for name, column in resolved.items():
        raw = row.get(column)
        value, why = _parse(raw, FIELDS[name])
        if why is not None:
            errors.append(f"{where}: {name} (column {column!r}): found {raw!r} ({why}); expected {FIELDS[name].accepted}")
        elif value is None and name in REQUIRED:
            errors.append(f"{where}: {name} (column {column!r}): found an empty cell; expected {FIELDS[name].accepted}")
        elif value is not None:
            values[name] = value
    if len(errors) == before and "tokens" not in values and "flops" not in values:
        errors.append(f"{where}: tokens and flops are both empty; expected at least one of them per run")
    if "top_k" in values and "n_experts" in values and values["top_k"] > values["n_experts"]:
        errors.append(f"{where}: top_k (column {resolved['top_k']!r}): found {values['top_k']}; expected <= "
                      f"n_experts = {values['n_experts']}")
    if len(errors) > before:
        return None
    params = values["params"]
    if "flops_per_token" in values:
        fpt = values["flops_per_token"]
    elif "tokens" in values and "flops" in values:
        fpt = values["flops"] / values["tokens"]
    else:
        fpt = SIX_N * params
    tokens = values.get("tokens", values.get("flops", 0.0) / fpt)
    flops = values.get("flops", tokens * fpt)
    if {"tokens", "flops", "flops_per_token"} <= set(values) and abs(tokens * fpt / flops - 1) > 0.05:
        errors.append(f"{where}: flops = {flops:.6g} but tokens x flops_per_token = {tokens * fpt:.6g}; expected "
                      "them to agree within 5% (or map only two of the three)")
        return None
    model = {param: v for k, v in values.items() if (param := FIELDS[k].model_param)}
    return ImportedRun(line, params, values.get("params_total", params), tokens, flops, fpt, values["loss"],
                       values.get("seed", 0), values.get("arm"), model, budget_label=values.get("budget"))


def _duplicates(runs: list[ImportedRun], path: Path, fmt: str) -> list[str]:
    seen: dict[tuple[str, int], ImportedRun] = {}
    errors = []
    for run in runs:
        key = (run.config_key(), run.seed)
        first = seen.setdefault(key, run)
        if first is run:
            continue
        what = "a duplicate of" if first.loss == run.loss else "the same config and seed as"
        errors.append(f"{_where(path, fmt, run.line)}: found {what} {'line' if fmt != 'parquet' else 'row'} "
                      f"{first.line} (params {run.params:.6g}, tokens {run.tokens:.6g}, seed {run.seed}); expected one "
                      "row per config and seed (map a seed column for repeated runs: --map seed=COLUMN)")
    return errors


def _place(runs: list[ImportedRun], given: list[float] | None, tol_log: float) -> list[Level]:
    """Budget level of every run (see the module docstring); returns the levels."""
    flops = np.array([r.flops for r in runs])
    if given is not None and all(r.budget_label is None for r in runs):
        levels = [Level(level_label(f), f) for f in sorted(given)]
        index = nearest_level(flops, levels, tol_log)
        for run, i in zip(runs, index, strict=True):
            run.budget_label = levels[i].label if i >= 0 else None
    else:
        labels, levels = assign_levels([r.budget_label for r in runs], flops, tol_log)
        for run, label in zip(runs, labels, strict=True):
            run.budget_label = label
    by_label = {lv.label: lv.flops for lv in levels}
    for run in runs:
        if run.budget_label is not None:
            try:
                run.budget_flops = float(run.budget_label)
            except ValueError:
                run.budget_flops = by_label.get(run.budget_label)
    return levels


def _check_options(path: Path, fmt: str | None, levels: Sequence[float] | None, tol_log: float) -> str:
    if not path.is_file():
        raise ImportRefused([f"{path}: no such file; expected a {', '.join(FORMATS)} file"])
    fmt = fmt or {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl",
                  ".ndjson": "jsonl"}.get(path.suffix.lower())
    if fmt not in FORMATS:
        raise ImportRefused([f"{path}: format {fmt or path.suffix!r} is unknown; expected a .csv, .parquet or .jsonl "
                             f"file, or --format {'|'.join(FORMATS)}"])
    try:
        check_tol(tol_log)
    except ValueError as exc:
        raise ImportRefused([f"--tol-log: {exc}"]) from None
    if levels is not None:
        bad = [v for v in levels if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0)]
        if bad or not levels or len(set(levels)) != len(levels):
            raise ImportRefused([f"--levels={list(levels)!r} is invalid: expected distinct FLOPs > 0, e.g. 1e18,3e18,1e19"])
    return fmt


def read_table(path: str | Path, mapping: dict[str, str] | None = None, *, fmt: str | None = None,
               levels: Sequence[float] | None = None, tol_log: float = DEFAULT_TOL_LOG) -> ImportPlan:
    """Read, map and validate every row; ImportRefused (every problem listed) before anything is written."""
    path = Path(path)
    mapping = dict(mapping or {})
    fmt = _check_options(path, fmt, levels, tol_log)
    rows, lines, columns = _read(path, fmt)
    if not rows:
        raise ImportRefused([f"{path}: no runs (only a header?); expected at least one row"])
    if len(rows) > MAX_ROWS:
        raise ImportRefused([f"{path}: {len(rows)} rows; expected at most {MAX_ROWS}"])
    resolved = resolve_mapping(columns, mapping, path)
    errors: list[str] = []
    runs = [run for row, line in zip(rows, lines, strict=True)
            if (run := _row_run(row, line, resolved, _where(path, fmt, line), errors)) is not None]
    errors += _duplicates(runs, path, fmt)
    if errors:
        raise ImportRefused(errors)
    rule = ("the flops_per_token column" if "flops_per_token" in resolved else
            "flops / tokens" if {"tokens", "flops"} <= set(resolved) else f"{SIX_N:g}N (no FLOPs per token in the file)")
    plan = ImportPlan(path, fmt, hashlib.sha256(path.read_bytes()).hexdigest(), resolved, [], tol_log,
                      sorted(levels) if levels is not None else None, rule, runs)
    plan.levels = _place(runs, plan.given_levels, tol_log)
    return plan
