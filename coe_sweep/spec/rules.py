"""Rules a spec must follow that span fields: what the space may sample and with which values, bundles,
vocab and sequence length against the model, constraint names, the iso-compute band's reference config.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from coe_sweep.model.config import model_field_names
from coe_sweep.spec.arms import NAME_ACCEPTED, NAME_KEY, NAME_PATTERN, choice_fields, possible_arms
from coe_sweep.spec.issues import Issues, Loc, format_path, from_pydantic, show
from coe_sweep.spec.schema import DataSection, ModelSection, SweepSpec, TrainSection
from coe_sweep.trial import EXECUTION_ONLY_FIELDS, tokenizer_vocab_size


def _field_check(section: type[BaseModel], name: str, value: Any) -> str | None:
    """None when `value` is valid for `section.name`, else what is accepted."""
    try:
        section.model_validate({name: value})
    except ValidationError as exc:
        return from_pydantic(exc.errors(include_url=False)[0])[2]
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
        return show(key), f"model fields written bare: {name!r} (not {key!r})"
    if section not in _SECTIONS or name not in _SECTIONS[section].model_fields:
        return f"unknown field {key!r}", _ACCEPTED_KEYS
    if section == "model" and name == "vocab_size":
        return show(key), "vocab_size to come from data.tokenizer (it cannot be sampled)"
    if section == "model" and name in EXECUTION_ONLY_FIELDS["model"]:
        return show(key), f"an architecture field: {name} changes execution, not the model"
    if section == "data" and name == "cache_dir":
        return show(key), "a data field that changes the data (cache_dir does not)"
    if section == "train" and name == "seed":
        return show(key), "search.seeds: N for seed repeats (seed i of every config trains with train.seed = i)"
    fixed_in = spec.fixed_model_fields() if section == "model" else getattr(spec, section).model_fields_set
    if name in fixed_in:
        return show(key), f"a field that is not also fixed in {section}.{name}: sample it or fix it, not both"
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
            issues.append((loc, show(entry), f"a mapping of fields (every choice of bundle {key!r} is one)"))
            continue
        for field_key, value in choice_fields(entry).items():
            field_loc = loc + (field_key,)
            if not isinstance(field_key, str) or (problem := _target_problem(spec, field_key)) is not None:
                found, expected = problem if isinstance(field_key, str) and problem else (show(field_key), "")
                issues.append((field_loc, found, expected or _ACCEPTED_KEYS))
            elif claimed.get(field_key, key) != key:
                issues.append((field_loc, show(field_key), f"a field no other dimension samples "
                                                             f"({field_key} is sampled by {claimed[field_key]})"))
            elif (value_problem := _value_problem(field_key, value)) is not None:
                issues.append((field_loc, show(value), value_problem))
            else:
                claimed[field_key] = key
    return issues


def _arm_name_issues(spec: SweepSpec) -> list[tuple[Loc, str, str]]:
    """Bundle choice names: all or none within a bundle dimension, well-formed, unique across the space."""
    issues: list[tuple[Loc, str, str]] = []
    seen: dict[str, Loc] = {}
    for key, dim in spec.space.items():
        if not dim.is_bundle:
            continue
        choices = list(dim.choice or [])
        named = [NAME_KEY in choice for choice in choices]
        if any(named) and not all(named):
            i = named.index(False)
            issues.append((("space", key, "choice", i), show(choices[i]),
                           f"a `name:` on every choice of bundle {key!r} or on none (choice {named.index(True)} "
                           "has one)"))
            continue
        for i, choice in enumerate(choices if all(named) else []):
            loc: Loc = ("space", key, "choice", i, NAME_KEY)
            name = choice[NAME_KEY]
            if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
                issues.append((loc, show(name), NAME_ACCEPTED))
            elif name in seen:
                issues.append((loc, show(name), f"a name no other choice has (it names {format_path(seen[name])})"))
            else:
                seen[name] = loc[:-1]
    return issues


def _baseline_issues(spec: SweepSpec) -> list[tuple[Loc, str, str]]:
    baseline = spec.analysis.baseline
    arms = possible_arms(spec)
    if baseline is None or baseline in arms:
        return []
    return [(("analysis", "baseline"), show(baseline), f"an arm the space produces: {', '.join(arms)}")]


def check_cross_fields(spec: SweepSpec) -> None:
    """Raise Issues for every cross-field rule `spec` breaks."""
    issues = _arm_name_issues(spec) + _space_issues(spec) + _model_issues(spec) + _worker_issues(spec)
    issues += [] if issues else _baseline_issues(spec)
    if issues:
        raise Issues(issues)


def _worker_issues(spec: SweepSpec) -> list[tuple[Loc, str, str]]:
    """A data-parallel trial splits train.batch_size evenly over its workers: every batch size it may
    train with (the fixed one, or each sampled choice) must be a multiple of the worker count."""
    workers = spec.cluster.trial_workers
    if workers == 1:
        return []
    expected = (f"a multiple of {workers} with {workers} data-parallel workers per trial "
                "(cluster.workers_per_trial / gpus_per_trial): each worker takes an equal share")
    dim = spec.space.get("train.batch_size")
    if dim is None:
        size = spec.train.batch_size
        return [] if size % workers == 0 else [(("train", "batch_size"), show(size), expected)]
    if dim.kind != "choice":
        return [(("space", "train.batch_size"), f"a {dim.kind} range", f"{{choice: [...]}} of sizes that are {expected}")]
    return [(("space", "train.batch_size", "choice", i), show(v), expected)
            for i, v in enumerate(dim.choice or []) if isinstance(v, int) and v % workers]


def _space_issues(spec: SweepSpec) -> list[tuple[Loc, str, str]]:
    """Space keys that cannot be sampled, values their fields refuse, float ranges on a grid."""
    issues: list[tuple[Loc, str, str]] = []
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
                    issues.append((loc + ("choice", i), show(value), message))
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
                    issues.append((loc + (dim.kind, i), show(value), message))
    if spec.search.algorithm == "grid":
        for key, dim in spec.space.items():
            if dim.kind == "float":
                issues.append((("space", key), f"a float range {dim.float}",
                               "{choice: [...]} or an int range: grid search cannot enumerate a float range"))
    return issues


def _model_issues(spec: SweepSpec) -> list[tuple[Loc, str, str]]:
    """vocab and seq_len against the fixed model, constraint names, the band's reference fields."""
    issues: list[tuple[Loc, str, str]] = []
    fixed_model = spec.fixed_model_fields()
    if "seed" in spec.train.model_fields_set:  # a trial's identity, set per trial from search.seeds
        issues.append((("train", "seed"), show(spec.train.seed), "no train.seed: search.seeds sets it (seed i of "
                       "every config trains with train.seed = i); search.seed seeds the sampler"))
    # vocab_size comes from the tokenizer
    vocab = tokenizer_vocab_size(spec.data.tokenizer)
    if "vocab_size" in fixed_model and fixed_model["vocab_size"] != vocab:
        issues.append((("model", "vocab_size"), show(fixed_model["vocab_size"]),
                       f"{vocab} as data.tokenizer={spec.data.tokenizer!r} implies, or leave vocab_size out"))
    # seq_len against a fixed max_seq_len
    if "max_seq_len" in fixed_model and "train.seq_len" not in spec.space \
            and spec.train.seq_len > fixed_model["max_seq_len"]:
        issues.append((("train", "seq_len"), show(spec.train.seq_len),
                       f"<= model.max_seq_len={fixed_model['max_seq_len']}"))
    # constraint names
    known = set(model_field_names()) | {f"train.{f}" for f in TrainSection.model_fields} \
        | {f"data.{f}" for f in DataSection.model_fields}
    for i, constraint in enumerate(spec.parsed_constraints()):
        unknown = sorted(constraint.names - known)
        if unknown:
            issues.append((("constraints", i), show(constraint.text),
                           f"names that are model fields or train.<field>/data.<field>; unknown: {', '.join(unknown)}"))
    band = spec.budget.flops_per_token
    if band is not None and band.relative_to is not None:
        for name, value in band.relative_to.items():
            loc = ("budget", "flops_per_token", "relative_to", name)
            if name not in ModelSection.model_fields or name == "vocab_size":
                issues.append((loc, f"unknown field {name!r}", "ModelConfig fields (not vocab_size)"))
            elif (field_problem := _field_check(ModelSection, name, value)) is not None:
                issues.append((loc, show(value), field_problem))
    return issues


def _type_name(annotation: Any) -> str:
    return str(annotation).replace("typing.", "").replace("<class '", "").replace("'>", "")
