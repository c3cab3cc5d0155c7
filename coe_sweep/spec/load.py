"""Loading a sweep spec: YAML -> validated `SweepSpec`, or a `SpecError` that points at the line.

Every problem is reported as `FILE:LINE: field.path: found <value>; expected <what is accepted>`
(values changed with `--set` are reported as `FILE: --set key.path: ...`). Loading runs, in order:
1. line-aware YAML parsing (syntax errors, duplicate keys, size limits);
2. `--set key.path=value` overrides (values are YAML scalars/flow values);
3. the pydantic schema (types, unknown keys, bounds, per-section rules);
4. cross-field rules: space keys and their values, data source paths, vocab/seq_len, constraint names;
5. resolution of defaults that depend on the environment: tracking.uri (`sqlite:///<cwd>/mlflow.db`),
   tracking.experiment (= name), cluster.storage_path (`<cwd>/sweeps/<name>`), `files:` paths;
6. feasibility: with the analytic accounting, every budget level must keep at least one candidate
   (a valid ModelConfig that satisfies the constraints, the FLOPs/token band, the memory cap and the
   step bounds); otherwise the error names the check that excludes everything.

File sources (`data.source: files:PATTERN`): a relative pattern resolves against the spec file's
directory and may not leave it (`..` that escapes is refused); an absolute pattern must lie inside
the spec file's directory or inside a root listed in the environment variable COE_SWEEP_DATA_ROOTS
(os.pathsep-separated). `~` is not expanded. The pattern must match at least one file, and every file
it matches must lie inside those roots once its symlinks are followed (runners.files checks each one).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from coe_sweep.model.config import model_field_names
from coe_sweep.run import tokenizer_vocab_size
from coe_sweep.spec.schema import (
    EXECUTION_ONLY_MODEL_FIELDS,
    DataSection,
    ModelSection,
    SweepSpec,
    TrainSection,
    model_for_path,
)
from coe_sweep.spec.yaml_lines import MAX_DEPTH, LocatedData, YamlLocationError, load_located, parse_scalar
from runners.files import DATA_ROOTS_ENV, check_files, data_roots

MAX_REPORTED_ISSUES = 10

Loc = tuple[str | int, ...]


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


class _Issues(Exception):
    """Internal: issues found by one phase, rendered into a SpecError by `load_spec`."""

    def __init__(self, issues: list[tuple[Loc, str, str]]) -> None:
        super().__init__(issues)
        self.issues = issues


def format_path(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _found(value: Any) -> str:
    if isinstance(value, float) and (abs(value) >= 1e6 or 0 < abs(value) < 1e-4):
        return f"{value:g}"
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


# ------------------------------------------------------------------ entry points
def load_spec(path: str | os.PathLike[str], overrides: Sequence[str] = ()) -> SweepSpec:
    """Read, validate and resolve a sweep spec; raises SpecError (see the module docstring)."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(file, [SpecIssue("", _found(file), f"a readable UTF-8 YAML file ({exc.__class__.__name__}: "
                                             f"{getattr(exc, 'strerror', None) or exc})", line=0)]) from None
    try:
        located = load_located(text)
    except YamlLocationError as exc:
        raise SpecError(file, [SpecIssue("<yaml>", exc.message, exc.expected, line=exc.line)]) from None
    return validate_spec_data(located, file=file, base_dir=Path(path).resolve().parent, overrides=overrides)


def validate_spec_data(located: LocatedData | dict[str, Any], *, file: str = "<spec>",
                       base_dir: Path | None = None, overrides: Sequence[str] = (),
                       check_feasibility: bool = True) -> SweepSpec:
    """Validate already-parsed spec data (a LocatedData keeps line numbers; a dict reports line 0)."""
    if not isinstance(located, LocatedData):
        located = LocatedData(located, {(): 0})
    base_dir = (base_dir or Path.cwd()).resolve()
    data = located.data
    if not isinstance(data, dict):
        raise SpecError(file, [SpecIssue("", _found(data), "a mapping with the sections name, space, budget, ...",
                                         line=located.line_of(()))])
    overridden: dict[Loc, str] = {}
    try:
        data = _apply_overrides(data, overrides, overridden)
    except _Issues as exc:
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
        issues = [located_issue(*_from_pydantic(err)) for err in exc.errors(include_url=False)]
        raise SpecError(file, sorted(issues, key=lambda i: i.line)) from None
    try:
        _check_cross_fields(spec)
        spec = _resolve(spec, base_dir)
        if check_feasibility:
            from coe_sweep.search.feasibility import feasibility_issues  # lazy: search imports spec

            if issues := feasibility_issues(spec):
                raise _Issues(issues)
    except _Issues as exc:
        raise SpecError(file, [located_issue(*issue) for issue in exc.issues]) from None
    return spec


# ------------------------------------------------------------------ --set overrides
def _split_key(key: str) -> list[str | int]:
    parts: list[str | int] = []
    for segment in key.split("."):
        match = re.fullmatch(r"([^\[\]]*)((?:\[\d+\])*)", segment)
        if match is None or (not match.group(1) and not match.group(2)):
            raise ValueError(segment)
        if match.group(1):
            parts.append(match.group(1))
        parts.extend(int(i) for i in re.findall(r"\[(\d+)\]", match.group(2)))
    return parts


def _apply_overrides(data: dict[str, Any], overrides: Sequence[str], overridden: dict[Loc, str]) -> dict[str, Any]:
    import copy

    data = copy.deepcopy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        try:
            parts = _split_key(key) if sep and key else None
        except ValueError:
            parts = None
        if not parts:
            raise _Issues([((item,), _found(item), "KEY.PATH=VALUE, e.g. search.trials_per_budget=4")])
        if len(parts) > MAX_DEPTH:
            raise _Issues([((_found(key),), f"a key path of {len(parts)} parts",
                            f"KEY.PATH=VALUE with at most {MAX_DEPTH} parts, e.g. search.trials_per_budget=4")])
        # space keys contain a dot themselves (`space.train.lr.float`): join them back
        if parts[0] == "space" and len(parts) >= 3 and parts[1] in ("train", "data", "model"):
            parts[1:3] = [f"{parts[1]}.{parts[2]}"]
        try:
            value = parse_scalar(raw)
        except YamlLocationError as exc:
            expected = exc.expected if exc.expected != "well-formed YAML" else f"a YAML value ({exc.message})"
            raise _Issues([(tuple(parts), _found(raw), expected)]) from None
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
                raise _Issues([(tuple(parts[:depth + 1]), _found(node), "a mapping or list to set a value in")])
        last = parts[-1]
        if isinstance(node, dict):
            node[last] = value
        elif isinstance(node, list) and isinstance(last, int) and last < len(node):
            node[last] = value
        else:
            raise _Issues([(tuple(parts), _found(node), "an existing mapping key or list index")])
        overridden[tuple(parts)] = format_path(parts)
    return data


# ------------------------------------------------------------------ pydantic errors -> issues
_TYPE_EXPECTED = {
    "int_type": "an integer", "int_from_float": "an integer", "int_parsing": "an integer",
    "float_type": "a number", "float_parsing": "a number", "bool_type": "true or false",
    "string_type": "a string", "list_type": "a list", "dict_type": "a mapping", "model_type": "a mapping",
    "model_attributes_type": "a mapping", "finite_number": "a finite number (not NaN or infinity)",
    "missing": "a value (this field is required)",
}


def _from_pydantic(err: Any) -> tuple[Loc, str, str]:
    loc: Loc = tuple(err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden":
        holder = model_for_path(loc[:-1])
        accepted = ", ".join(holder.model_fields) if holder is not None else "none"
        return loc, f"unknown field {loc[-1]!r}", f"one of the fields: {accepted}"
    found = "nothing" if kind == "missing" else _found(err.get("input"))
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
            for part in _split_key(sub.lstrip(".")) if not sub.startswith("[") else [int(sub[1:-1])]:
                loc += (part,)
                value = value.get(part) if isinstance(value, dict) else (
                    value[part] if isinstance(value, list) and isinstance(part, int) and part < len(value) else None)
            found = _found(value)
    return loc, found, expected


# ------------------------------------------------------------------ cross-field rules
def _field_check(section: type[BaseModel], name: str, value: Any) -> str | None:
    """None when `value` is valid for `section.name`, else what is accepted."""
    try:
        section.model_validate({name: value})
    except ValidationError as exc:
        return _from_pydantic(exc.errors(include_url=False)[0])[2]
    return None


def space_target(key: str) -> tuple[str, str]:
    """`top_k` -> ('model', 'top_k'); `train.lr` -> ('train', 'lr'); `data.seed` -> ('data', 'seed')."""
    section, _, name = key.rpartition(".")
    return (section or "model"), name


_SECTIONS: dict[str, type[BaseModel]] = {"model": ModelSection, "train": TrainSection, "data": DataSection}


_ACCEPTED_KEYS = ("a ModelConfig field (e.g. top_k, iterations, n_experts, n_layers, d_model), "
                  "train.<field> / data.<field>, or a bundle name whose choices are mappings of such fields")


def _target_problem(spec: SweepSpec, key: str) -> tuple[str, str] | None:
    """(found, expected) when `key` cannot be sampled; None when it names a samplable field."""
    section, name = space_target(key)
    if key.startswith("model."):
        return _found(key), f"model fields written bare: {name!r} (not {key!r})"
    if section not in _SECTIONS or name not in _SECTIONS[section].model_fields:
        return f"unknown field {key!r}", _ACCEPTED_KEYS
    if section == "model" and name == "vocab_size":
        return _found(key), "vocab_size to come from data.tokenizer (it cannot be sampled)"
    if section == "model" and name in EXECUTION_ONLY_MODEL_FIELDS:
        return _found(key), f"an architecture field: {name} changes execution, not the model"
    if section == "data" and name == "cache_dir":
        return _found(key), "a data field that changes the data (cache_dir does not)"
    fixed_in = spec.fixed_model_fields() if section == "model" else getattr(spec, section).model_fields_set
    if name in fixed_in:
        return _found(key), f"a field that is not also fixed in {section}.{name}: sample it or fix it, not both"
    return None


def _value_problem(key: str, value: Any) -> str | None:
    section, name = space_target(key)
    problem = _field_check(_SECTIONS[section], name, value)
    return None if problem is None else f"{problem} (as {key})"


def _check_bundle(spec: SweepSpec, key: str, choices: list[Any], claimed: dict[str, str]) -> list[tuple[Loc, str, str]]:
    """A bundle dimension: each choice is a mapping {field: value} applied together."""
    issues: list[tuple[Loc, str, str]] = []
    for i, entry in enumerate(choices):
        loc: Loc = ("space", key, "choice", i)
        if not isinstance(entry, dict):
            issues.append((loc, _found(entry), f"a mapping of fields (every choice of bundle {key!r} is one)"))
            continue
        for field_key, value in entry.items():
            field_loc = loc + (field_key,)
            if not isinstance(field_key, str) or (problem := _target_problem(spec, field_key)) is not None:
                found, expected = problem if isinstance(field_key, str) and problem else (_found(field_key), "")
                issues.append((field_loc, found, expected or _ACCEPTED_KEYS))
            elif claimed.get(field_key, key) != key:
                issues.append((field_loc, _found(field_key), f"a field no other dimension samples "
                                                             f"({field_key} is sampled by {claimed[field_key]})"))
            elif (problem := _value_problem(field_key, value)) is not None:
                issues.append((field_loc, _found(value), problem))
            else:
                claimed[field_key] = key
    return issues


def _check_cross_fields(spec: SweepSpec) -> None:
    issues: list[tuple[Loc, str, str]] = []
    model_names = model_field_names()
    fixed_model = spec.fixed_model_fields()
    claimed: dict[str, str] = {key: key for key in spec.space if _target_problem(spec, key) is None}
    for key, dim in spec.space.items():
        loc: Loc = ("space", key)
        problem = _target_problem(spec, key)
        if problem is not None:
            if dim.is_bundle and "unknown field" in problem[0] and not key.startswith("model."):
                issues.extend(_check_bundle(spec, key, list(dim.choice or []), claimed))
            else:
                issues.append((loc, *problem))
            continue
        section, name = space_target(key)
        if dim.kind == "choice":
            assert dim.choice is not None
            for i, value in enumerate(dim.choice):
                if (message := _value_problem(key, value)) is not None:
                    issues.append((loc + ("choice", i), _found(value), message))
        else:
            field_type = _SECTIONS[section].model_fields[name].annotation
            is_int = "int" in str(field_type) and "float" not in str(field_type)
            is_float = "float" in str(field_type)
            if dim.kind == "int" and not (is_int or is_float) or dim.kind == "float" and not is_float:
                issues.append((loc, f"a {dim.kind} range for {key}",
                               f"{{choice: [...]}} for a field of type {_type_name(field_type)}"))
                continue
            for i, value in enumerate(dim.bounds):
                if (message := _value_problem(key, float(value) if is_float else value)) is not None:
                    issues.append((loc + (dim.kind, i), _found(value), message))
    if spec.search.algorithm == "grid":
        for key, dim in spec.space.items():
            if dim.kind == "float":
                issues.append((("space", key), f"a float range {dim.float}",
                               "{choice: [...]} or an int range: grid search cannot enumerate a float range"))
    # vocab_size comes from the tokenizer
    vocab = tokenizer_vocab_size(spec.data.tokenizer)
    if "vocab_size" in fixed_model and fixed_model["vocab_size"] != vocab:
        issues.append((("model", "vocab_size"), _found(fixed_model["vocab_size"]),
                       f"{vocab} as data.tokenizer={spec.data.tokenizer!r} implies, or leave vocab_size out"))
    # seq_len against a fixed max_seq_len
    if "max_seq_len" in fixed_model and "train.seq_len" not in spec.space \
            and spec.train.seq_len > fixed_model["max_seq_len"]:
        issues.append((("train", "seq_len"), _found(spec.train.seq_len),
                       f"<= model.max_seq_len={fixed_model['max_seq_len']}"))
    # constraint names
    known = set(model_names) | {f"train.{f}" for f in TrainSection.model_fields} \
        | {f"data.{f}" for f in DataSection.model_fields}
    for i, constraint in enumerate(spec.parsed_constraints()):
        unknown = sorted(constraint.names - known)
        if unknown:
            issues.append((("constraints", i), _found(constraint.text),
                           f"names that are model fields or train.<field>/data.<field>; unknown: {', '.join(unknown)}"))
    band = spec.budget.flops_per_token
    if band is not None and band.relative_to is not None:
        for name, value in band.relative_to.items():
            loc = ("budget", "flops_per_token", "relative_to", name)
            if name not in ModelSection.model_fields or name == "vocab_size":
                issues.append((loc, f"unknown field {name!r}", "ModelConfig fields (not vocab_size)"))
            elif (problem := _field_check(ModelSection, name, value)) is not None:
                issues.append((loc, _found(value), problem))
    if issues:
        raise _Issues(issues)


def _type_name(annotation: Any) -> str:
    return str(annotation).replace("typing.", "").replace("<class '", "").replace("'>", "")


# ------------------------------------------------------------------ environment-dependent defaults
def _resolve(spec: SweepSpec, base_dir: Path) -> SweepSpec:
    cwd = Path.cwd()
    tracking = spec.tracking.model_copy(update={
        "uri": spec.tracking.uri or f"sqlite:///{cwd / 'mlflow.db'}",
        "experiment": spec.tracking.experiment or spec.name,
    })
    storage = Path(spec.cluster.storage_path or f"sweeps/{spec.name}")
    cluster = spec.cluster.model_copy(update={"storage_path": str(storage if storage.is_absolute() else cwd / storage)})
    data = spec.data
    issues: list[tuple[Loc, str, str]] = []
    if data.source.startswith("files:"):
        resolved, problem = resolve_files_source(data.source, base_dir)
        if problem:
            issues.append((("data", "source"), _found(data.source), problem))
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
                        issues.append((("space", key, "choice", i), _found(value), problem))
                    value = resolved
                new_choices.append(value)
            space[key] = dim.model_copy(update={"choice": new_choices})
    if issues:
        raise _Issues(issues)
    return spec.model_copy(update={"tracking": tracking, "cluster": cluster, "data": data, "space": space})


def resolve_files_source(source: str, base_dir: Path) -> tuple[str, str | None]:
    """`files:PATTERN` -> (`files:/absolute/PATTERN`, None), or (source, what is accepted). Every file the
    pattern names is checked (runners.files), not only the pattern: a glob can pass through a symlink."""
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
