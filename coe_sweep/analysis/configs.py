"""Turning a trials-frame row back into a config one can train.

MLflow stores the flattened run spec as string params (`model.top_k` = "2"); this rebuilds the
nested `RunSpec.to_dict()` shape ({"model": {...}, "train": {...}, "data": {...}, "horizon": {...}})
with values typed by the dataclass annotations, so `RunSpec.from_dict(trainable)` works.
Only coe_sweep.trial / coe_sweep.model.config (pure dataclasses) are imported: no torch.
"""

from __future__ import annotations

import re
import typing
from dataclasses import fields
from typing import Any

import numpy as np

from coe_sweep.model.config import ModelConfig
from coe_sweep.trial import DataConfig, TrainConfig

_SECTIONS: dict[str, type] = {"model": ModelConfig, "train": TrainConfig, "data": DataConfig}
_INT = re.compile(r"^[+-]?\d+$")


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in fields(cls)}


def _allows(annotation: Any, kind: type) -> bool:
    if annotation is kind:
        return True
    return any(_allows(arg, kind) for arg in typing.get_args(annotation))


def parse_param(value: Any) -> Any:
    """Generic parse of an MLflow param string; non-strings pass through (numpy -> python)."""
    if isinstance(value, np.generic):
        value = value.item()
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text in ("None", "null"):
        return None
    if text in ("True", "true", "False", "false"):
        return text.lower() == "true"
    if _INT.match(text):
        return int(text)
    try:
        return float(text)
    except ValueError:
        return value


def _typed(value: Any, annotation: Any) -> Any:
    value = parse_param(value)
    if isinstance(value, float) and value.is_integer() and _allows(annotation, int) and not _allows(annotation, float):
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and _allows(annotation, float) \
            and not _allows(annotation, int):
        return float(value)
    if _allows(annotation, str) and not isinstance(value, str) and value is not None \
            and not _allows(annotation, int) and not _allows(annotation, float) and not _allows(annotation, bool):
        return str(value)
    return value


def trainable_config(params: dict[str, Any], *, tokens: float | None, flops: float | None) -> tuple[dict[str, Any], list[str]]:
    """Nested run-spec dict from flat `section.field` params, with the horizon set to `tokens`
    (or `flops` when tokens is None). Returns (config, dropped keys: unknown fields or NaN values)."""
    config: dict[str, dict[str, Any]] = {name: {} for name in _SECTIONS}
    types = {name: _field_types(cls) for name, cls in _SECTIONS.items()}
    dropped: list[str] = []
    for key, raw in params.items():
        section, _, name = str(key).partition(".")
        if section not in _SECTIONS:
            continue
        if name not in types[section] or (isinstance(raw, float) and np.isnan(raw)):
            dropped.append(str(key))
            continue
        config[section][name] = _typed(raw, types[section][name])
    if tokens is not None and np.isfinite(tokens) and tokens > 0:
        horizon: dict[str, Any] = {"tokens": int(round(tokens))}
    elif flops is not None:
        horizon = {"flops": float(flops)}
    else:
        raise ValueError("trainable_config: need tokens > 0 or flops to set the horizon")
    return {**config, "horizon": horizon}, dropped
