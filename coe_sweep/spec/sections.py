"""The building blocks of the spec schema: the strict base section, numeric coercions, size bounds, and the
sections generated from the dataclasses that own their fields (coe_sweep.trial's TrainConfig and DataConfig,
coe_sweep.model.config's ModelConfig), so that a field's type, bounds and description are written once.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import MISSING, fields
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, create_model

from coe_sweep.fields import field_default, field_docs
from coe_sweep.model.config import ModelConfig
from coe_sweep.trial import SEARCH_OBJECTIVES, DataConfig, TrainConfig
from coe_sweep.units import parse_bytes

STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)

MAX_FLOPS = 1e27  # beyond any training run this tool could schedule
MAX_TOKENS = 10**13
MAX_MEMORY_BYTES = 2**50  # 1 PiB
MAX_TRIALS_PER_BUDGET = 10_000
MAX_BUDGET_LEVELS = 50
MAX_CHOICES = 1_000
MAX_SEEDS = 100

SearchObjective = Literal[SEARCH_OBJECTIVES]  # type: ignore[valid-type]

# Inclusive bounds for ModelConfig's integer sizes: generous for real runs, fatal for typos.
MODEL_BOUNDS: dict[str, tuple[int, int]] = {
    "vocab_size": (1, 1_000_000), "max_seq_len": (1, 1_048_576), "d_model": (1, 65_536),
    "n_layers": (1, 1_024), "n_heads": (1, 1_024), "head_dim": (2, 65_536), "n_kv_heads": (1, 1_024), "d_expert": (1, 262_144),
    "n_experts": (1, 4_096), "n_shared": (0, 64), "top_k": (1, 4_096), "iterations": (1, 64),
}


def at(path: str, expected: str) -> str:
    """Message of a section-level check that is about one field below it: `@path@expected`.

    Model validators cannot set the error location; load.py reads this prefix back and reports the
    issue at `<section>.<path>` with the value found there."""
    return f"@{path}@{expected}"


def _integral(value: Any) -> Any:
    """Integral floats (`2e6` in YAML) become ints; everything else goes on to strict validation."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return value


def _numeric_string(value: Any) -> Any:
    """`"1e13"` (a quoted number) becomes a float; booleans are refused, not read as 0/1."""
    if isinstance(value, str):
        try:
            return float(value.replace("_", ""))
        except ValueError:
            return value
    return value


Int = Annotated[int, BeforeValidator(_integral)]
Real = Annotated[float, Field()]  # a plain float, named so that Dimension's `float` field can use it
Flops = Annotated[float, BeforeValidator(_numeric_string), Field(gt=0, le=MAX_FLOPS)]

MemoryBytes = Annotated[int, BeforeValidator(parse_bytes), Field(ge=1, le=MAX_MEMORY_BYTES)]


class Section(BaseModel):
    model_config = STRICT



def _section_field_type(f: dataclasses.Field[Any], hint: Any) -> Any:
    """Type of a `data:`/`train:` field: the dataclass annotation with its metadata rules as pydantic
    constraints (bounds, lengths, the field's own check) and integral-float coercion for integers."""
    args = typing.get_args(hint)
    optional = type(None) in args
    base = next(a for a in args if a is not type(None)) if optional else hint
    rules = f.metadata
    constraints = {k: rules[k] for k in ("ge", "gt", "le", "lt", "min_length", "max_length") if k in rules}
    if base is int:
        base = Annotated[int, BeforeValidator(_integral), Field(**constraints)]
    elif base is float or base is str:
        base = Annotated[base, Field(**constraints)]
        if (check := rules.get("check")) is not None:
            base = Annotated[base, AfterValidator(_checked(check))]
    return base | None if optional else base


def _checked(check: Any) -> Any:
    def validate(value: str) -> str:
        if (accepted := check(value)) is not None:
            raise ValueError(accepted)
        return value
    return validate


def _section_from(cls: type) -> Any:
    """A pydantic model with the fields, defaults, rules and descriptions of dataclass `cls`.

    Typed `Any` on purpose: the generated fields are not visible to a type checker, so the sections below
    subclass it and their instances are checked like any other dynamic value."""
    return create_model(  # type: ignore[call-overload]
        f"_{cls.__name__}Fields", __config__=STRICT,
        **{field_name: (_section_field_type(f, hint), Field(field_default(f), description=f.metadata.get("doc")))
           for field_name, (f, hint) in field_docs(cls).items()})


class DataSection(_section_from(DataConfig)):  # type: ignore[misc]
    """The dataset every trial trains on: coe_sweep.trial.DataConfig's fields, rules and descriptions."""


class TrainSection(_section_from(TrainConfig)):  # type: ignore[misc]
    """Optimisation of every trial: coe_sweep.trial.TrainConfig's fields (the horizon comes from budget)."""


def _model_field_type(name: str, hint: Any) -> Any:
    """Type of a `model:` field: ModelConfig's annotation with integral-float coercion and bounds."""
    optional = type(None) in typing.get_args(hint)
    base = next((a for a in typing.get_args(hint) if a is not type(None)), hint) if optional else hint
    if base is int:
        lo, hi = MODEL_BOUNDS.get(name, (None, None))
        base = Annotated[int, BeforeValidator(_integral), Field(ge=lo, le=hi)]
    elif base is float:
        base = Annotated[float, Field(ge=0, le=1e9)]
    return base | None if optional else base


def _model_fields() -> Any:
    hints, defaults = typing.get_type_hints(ModelConfig), {f.name: f.default for f in fields(ModelConfig)}
    return create_model(  # type: ignore[call-overload]
        "_ModelConfigFields", __config__=STRICT,
        **{name: (_model_field_type(name, hints[name]), Field(default, description=f"ModelConfig.{name} "
                                                              f"(default {default!r})"))
           for name, default in defaults.items() if default is not MISSING})


class ModelSection(_model_fields()):  # type: ignore[misc]
    """Fixed ModelConfig fields for every trial (see coe_sweep/model/config.py for their meaning). Only the
    fields written here are fixed; the rest take ModelConfig's defaults unless sampled. vocab_size comes from
    data.tokenizer; max_seq_len defaults to train.seq_len."""
