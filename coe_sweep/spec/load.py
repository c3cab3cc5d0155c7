"""Loading a sweep spec: YAML -> validated `SweepSpec`, or a `SpecError` that points at the line.

Every problem is reported as `FILE:LINE: field.path: found <value>; expected <what is accepted>`
(values changed with `--set` are reported as `FILE: --set key.path: ...`). Loading runs, in order:
1. line-aware YAML parsing (syntax errors, duplicate keys, size limits);
2. `--set key.path=value` overrides (values are YAML scalars/flow values);
3. the pydantic schema (types, unknown keys, bounds, per-section rules);
4. cross-field rules: space keys and their values, data source paths, vocab/seq_len, constraint names;
5. resolution of defaults that depend on the environment or the space: tracking.uri
   (`sqlite:///<cwd>/mlflow.db`), tracking.experiment (= name), cluster.storage_path (`<cwd>/sweeps/<name>`),
   `files:` paths, analysis.baseline (coe_sweep.spec.arms.default_baseline);
6. the caller's `checks` (functions spec -> issues), reported with line numbers like every other issue:
   coe_sweep.search.feasibility.load_feasible_spec passes the planner's feasibility check (every budget
   level keeps at least one candidate), which this package cannot import (spec/ never imports search/).

File sources (`data.source: files:PATTERN`): a relative pattern resolves against the spec file's
directory and may not leave it (`..` that escapes is refused); an absolute pattern must lie inside
the spec file's directory or inside a root listed in the environment variable COE_SWEEP_DATA_ROOTS
(os.pathsep-separated). `~` is not expanded. The pattern must match at least one file, and every file
it matches must lie inside those roots once its symlinks are followed (coe_sweep.datafiles checks each one).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from coe_sweep.datafiles import DATA_ROOTS_ENV, check_files, data_roots
from coe_sweep.spec.arms import default_baseline, possible_arms
from coe_sweep.spec.issues import (
    Issue,
    Issues,
    Loc,
    SpecError,
    SpecIssue,
    format_path,
    from_pydantic,
    show,
    split_key,
)
from coe_sweep.spec.rules import check_cross_fields
from coe_sweep.spec.schema import (
    SweepSpec,
)
from coe_sweep.spec.yaml_lines import MAX_DEPTH, LocatedData, YamlLocationError, load_located, parse_scalar

DEFAULT_DB, SIMULATED_DB = "mlflow.db", "mlflow-sim.db"  # default stores, in the working directory
Check = Callable[[SweepSpec], list[Issue]]  # a check a caller adds to loading (see the module docstring)


# ------------------------------------------------------------------ entry points
def default_tracking_uri(simulated: bool = False) -> str:
    """The store a spec without tracking.uri writes to: `mlflow.db` in the working directory, or beside it
    `mlflow-sim.db` for `launch --simulate`, so simulated sweeps never mix with trained ones by default."""
    return f"sqlite:///{Path.cwd() / (SIMULATED_DB if simulated else DEFAULT_DB)}"


def load_spec(path: str | os.PathLike[str], overrides: Sequence[str] = (), checks: Sequence[Check] = (), *,
              simulated: bool = False) -> SweepSpec:
    """Read, validate and resolve a sweep spec; raises SpecError (see the module docstring).
    simulated: the spec is for `launch --simulate` (a missing tracking.uri resolves to the simulated store)."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(file, [SpecIssue("", show(file), f"a readable UTF-8 YAML file ({exc.__class__.__name__}: "
                                             f"{getattr(exc, 'strerror', None) or exc})", line=0)]) from None
    try:
        located = load_located(text)
    except YamlLocationError as exc:
        raise SpecError(file, [SpecIssue("<yaml>", exc.message, exc.expected, line=exc.line)]) from None
    return validate_spec_data(located, file=file, base_dir=Path(path).resolve().parent, overrides=overrides,
                              checks=checks, simulated=simulated)


def validate_spec_data(located: LocatedData | dict[str, Any], *, file: str = "<spec>",
                       base_dir: Path | None = None, overrides: Sequence[str] = (),
                       checks: Sequence[Check] = (), simulated: bool = False) -> SweepSpec:
    """Validate already-parsed spec data (a LocatedData keeps line numbers; a dict reports line 0)."""
    if not isinstance(located, LocatedData):
        located = LocatedData(located, {(): 0})
    base_dir = (base_dir or Path.cwd()).resolve()
    data = located.data
    if not isinstance(data, dict):
        raise SpecError(file, [SpecIssue("", show(data), "a mapping with the sections name, space, budget, ...",
                                         line=located.line_of(()))])
    overridden: dict[Loc, str] = {}
    try:
        data = _apply_overrides(data, overrides, overridden)
    except Issues as exc:
        raise SpecError(file, [SpecIssue(format_path(loc), found, expected, override=format_path(loc))
                               for loc, found, expected in exc.issues]) from None

    def located_issue(loc: Loc, found: str, expected: str) -> SpecIssue:
        for cut in range(len(loc), 0, -1):
            if loc[:cut] in overridden:
                return SpecIssue(format_path(loc), found, expected, override=overridden[loc[:cut]])
        for path, key in overridden.items():  # `--set name.first=x` made `name` a mapping: the issue is at `name`
            if loc and path[:len(loc)] == loc:
                return SpecIssue(format_path(loc), found, expected, override=key)
        return SpecIssue(format_path(loc), found, expected, line=located.line_of(loc))

    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as exc:
        issues = [located_issue(*from_pydantic(err)) for err in exc.errors(include_url=False)]
        raise SpecError(file, sorted(issues, key=lambda i: i.line)) from None
    try:
        check_cross_fields(spec)
        spec = _resolve(spec, base_dir, simulated)
        for check in checks:
            if found := check(spec):
                raise Issues(found)
    except Issues as exc:
        raise SpecError(file, [located_issue(*issue) for issue in exc.issues]) from None
    return spec


# ------------------------------------------------------------------ --set overrides
def _apply_overrides(data: dict[str, Any], overrides: Sequence[str], overridden: dict[Loc, str]) -> dict[str, Any]:
    import copy

    data = copy.deepcopy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        try:
            parts = split_key(key) if sep and key else None
        except ValueError:
            parts = None
        if not parts:
            raise Issues([((item,), show(item), "KEY.PATH=VALUE, e.g. search.trials_per_budget=4")])
        if len(parts) > MAX_DEPTH:
            raise Issues([((show(key),), f"a key path of {len(parts)} parts",
                           f"KEY.PATH=VALUE with at most {MAX_DEPTH} parts, e.g. search.trials_per_budget=4")])
        # space keys contain a dot themselves (`space.train.lr.float`): join them back
        if parts[0] == "space" and len(parts) >= 3 and parts[1] in ("train", "data", "model"):
            parts[1:3] = [f"{parts[1]}.{parts[2]}"]
        try:
            value = parse_scalar(raw)
        except YamlLocationError as exc:
            expected = exc.expected if exc.expected != "well-formed YAML" else f"a YAML value ({exc.message})"
            raise Issues([(tuple(parts), show(raw), expected)]) from None
        node: Any = data
        for depth, part in enumerate(parts[:-1]):
            if isinstance(node, dict):
                child = node.get(part)
                if not isinstance(child, (dict, list)):
                    child = node[part] = {}
                node = child
            elif isinstance(node, list) and isinstance(part, int) and part < len(node):
                node = node[part]
            else:
                raise Issues([(tuple(parts[:depth + 1]), show(node), "a mapping or list to set a value in")])
        last = parts[-1]
        if isinstance(node, dict):
            node[last] = value
        elif isinstance(node, list) and isinstance(last, int) and last < len(node):
            node[last] = value
        else:
            raise Issues([(tuple(parts), show(node), "an existing mapping key or list index")])
        overridden[tuple(parts)] = format_path(parts)
    return data


# ------------------------------------------------------------------ environment-dependent defaults
def _resolve(spec: SweepSpec, base_dir: Path, simulated: bool = False) -> SweepSpec:
    cwd = Path.cwd()
    tracking = spec.tracking.model_copy(update={
        "uri": spec.tracking.uri or default_tracking_uri(simulated),
        "experiment": spec.tracking.experiment or spec.name,
    })
    storage = Path(spec.cluster.storage_path or f"sweeps/{spec.name}")
    cluster = spec.cluster.model_copy(update={"storage_path": str(storage if storage.is_absolute() else cwd / storage)})
    data = spec.data
    issues: list[tuple[Loc, str, str]] = []
    if data.source.startswith("files:"):
        resolved, problem = resolve_files_source(data.source, base_dir)
        if problem:
            issues.append((("data", "source"), show(data.source), problem))
        else:
            data = data.model_copy(update={"source": resolved})
    space = dict(spec.space)
    for key, dim in spec.space.items():
        if key == "data.source" and dim.choice is not None:
            new_choices = []
            for i, value in enumerate(dim.choice):
                if isinstance(value, str) and value.startswith("files:"):
                    resolved, problem = resolve_files_source(value, base_dir)
                    if problem:
                        issues.append((("space", key, "choice", i), show(value), problem))
                    value = resolved
                new_choices.append(value)
            space[key] = dim.model_copy(update={"choice": new_choices})
    if issues:
        raise Issues(issues)
    analysis = spec.analysis.model_copy(update={
        "baseline": spec.analysis.baseline or default_baseline(possible_arms(spec))})
    return spec.model_copy(update={"tracking": tracking, "cluster": cluster, "data": data, "space": space,
                                   "analysis": analysis})


def resolve_files_source(source: str, base_dir: Path) -> tuple[str, str | None]:
    """`files:PATTERN` -> (`files:/absolute/PATTERN`, None), or (source, what is accepted). Every file the
    pattern names is checked (coe_sweep.datafiles), not only the pattern: a glob can pass through a symlink."""
    pattern = source.removeprefix("files:").strip()
    accepted_root = (f"a path inside the spec's directory {base_dir} (relative, without '..' leaving it) or "
                     f"inside a root listed in ${DATA_ROOTS_ENV}")
    if pattern.startswith("~"):
        return source, f"{accepted_root}; '~' is not expanded"
    if "\x00" in pattern:
        return source, accepted_root
    candidate = Path(pattern)
    # realpath on both sides: a symlink can neither lead out of a root nor make a root refuse its own files
    absolute = Path(os.path.realpath(candidate if candidate.is_absolute() else base_dir / candidate))
    roots = [Path(os.path.realpath(base_dir)), *data_roots()]
    if not any(absolute == root or root in absolute.parents for root in roots):
        return source, accepted_root
    _, problem = check_files(str(absolute), roots)
    if problem is not None:
        return source, f"{accepted_root}, symlinks followed ({problem.what})" if problem.outside else \
            f"{problem.expected} ({problem.what})"
    return f"files:{absolute}", None

