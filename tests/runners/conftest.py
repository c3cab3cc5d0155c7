"""Shared fixtures of the runner tests: one token cache per session and a tiny RunSpec factory."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from coe_sweep.model.config import ModelConfig
from coe_sweep.trial import DataConfig, Horizon, RunSpec, TrainConfig

TINY_MODEL = dict(d_model=32, n_layers=1, n_heads=2, d_expert=16, n_experts=4, top_k=2, iterations=2,
                  max_seq_len=32)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data cache for the session, so tests that share a data config tokenize once."""
    return tmp_path_factory.mktemp("coe_sweep_cache")


@pytest.fixture()
def tiny_spec(cache_dir: Path) -> Callable[..., RunSpec]:
    """RunSpec of a ~20k-parameter CoE (C=2) on a small builtin arithmetic set, 1 CPU thread."""

    def make(*, model: dict[str, Any] | None = None, train: dict[str, Any] | None = None,
             data: dict[str, Any] | None = None, horizon: Horizon | None = None) -> RunSpec:
        data_cfg = DataConfig(num_examples=2000, val_tokens=2048, cache_dir=str(cache_dir))
        train_cfg = TrainConfig(batch_size=4, seq_len=32, lr=3e-3, warmup_steps=2, eval_interval=4,
                                threads=1, device="cpu")
        return RunSpec(model=ModelConfig(**{**TINY_MODEL, **(model or {})}),
                       train=replace(train_cfg, **(train or {})), data=replace(data_cfg, **(data or {})),
                       horizon=horizon or Horizon(steps=6))

    return make
