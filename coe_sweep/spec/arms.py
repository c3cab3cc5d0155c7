"""Arms: the architecture each trial of a sweep belongs to, named in the spec or derived from the model.

A bundle choice may carry a `name:` key (`- {name: coe_2_k, iterations: 2, top_k: 2}`): every trial that
takes that choice belongs to that arm (names of several named bundle dimensions are joined with '+'). Names
are all-or-none within one bundle dimension, unique, and made of letters, digits, _ . - (rules.py checks
them). Without names, the arm is derived from the architecture (coe_sweep.trial.derived_arm): `dense`, `moe`,
`coe-C2`, ... Arm is planning metadata: it groups trials, it never enters a config hash.
`analysis.baseline` names the arm others are compared with (default: `moe` when the space has it, else the
first arm).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from coe_sweep.model.config import ModelConfig
from coe_sweep.trial import arm_name, derived_arm

if TYPE_CHECKING:
    from coe_sweep.spec.schema import Dimension, SweepSpec

NAME_KEY = "name"
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")
NAME_ACCEPTED = "a name of 1 to 64 letters, digits, _ . - (starting with a letter or digit)"
DEFAULT_BASELINE = "moe"
_ARM_FIELDS = ("iterations", "dense")  # what a derived arm depends on


def choice_fields(choice: Mapping[str, Any]) -> dict[str, Any]:
    """The fields a bundle choice sets (its `name`, if any, is not a field)."""
    return {k: v for k, v in choice.items() if k != NAME_KEY}


def named_dimensions(spec: SweepSpec) -> list[str]:
    """Bundle dimensions whose choices are named, in space order."""
    return [key for key, dim in spec.space.items()
            if dim.is_bundle and any(NAME_KEY in choice for choice in dim.choice or [])]


def arm_of(spec: SweepSpec, point: Mapping[str, Any], model: ModelConfig) -> str:
    """The arm of the trial at `point` (bundle dimensions as choice indices) whose model is `model`."""
    names = [str(_choices(spec.space[key])[point[key]][NAME_KEY]) for key in named_dimensions(spec) if key in point]
    return "+".join(names) if names else derived_arm(model)


def possible_arms(spec: SweepSpec) -> list[str]:
    """Every arm the space can produce, in space order (derived arms: every (iterations, dense) it can set)."""
    named = named_dimensions(spec)
    if named:
        return ["+".join(names) for names in itertools.product(
            *([str(choice[NAME_KEY]) for choice in _choices(spec.space[key])] for key in named))]
    fixed = spec.fixed_model_fields()
    defaults = ModelConfig()
    base = {name: fixed.get(name, getattr(defaults, name)) for name in _ARM_FIELDS}
    options: list[list[dict[str, Any]]] = []
    for key, dim in spec.space.items():
        if dim.is_bundle:
            alternatives = [{f: c[f] for f in _ARM_FIELDS if f in c} for c in _choices(dim)]
            if any(alternatives):
                options.append(alternatives)
        elif key in _ARM_FIELDS:
            options.append([{key: value} for value in _values(dim)])
    arms: list[str] = []
    for combo in itertools.product(*options):
        fields = dict(base)
        for part in combo:
            fields.update(part)
        arm = arm_name(int(fields["iterations"]), bool(fields["dense"]))
        if arm not in arms:
            arms.append(arm)
    return arms


def default_baseline(arms: list[str]) -> str | None:
    return DEFAULT_BASELINE if DEFAULT_BASELINE in arms else (arms[0] if arms else None)


def _choices(dim: Dimension) -> list[Any]:
    return list(dim.choice or [])


def _values(dim: Dimension) -> list[Any]:
    if dim.choice is not None:
        return list(dim.choice)
    lo, hi = dim.bounds
    return list(range(int(lo), int(hi) + 1, dim.step or 1)) if dim.kind == "int" else [lo, hi]
