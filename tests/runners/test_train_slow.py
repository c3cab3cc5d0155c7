"""Slow: short real CPU runs (about 45 s each on 2 idle cores, a few minutes on a busy machine) of a small CoE (C=2) that learn.

On `builtin:arithmetic` and on real GSM8K (files: source), the validation loss must fall from its
start (about ln 258 = 5.55 for the byte tokenizer) to below 60% of it. Run with `-s` to see the
numbers.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from coe_sweep.model.config import ModelConfig
from coe_sweep.trial import DataConfig, Horizon, RunSpec, TrainConfig
from runners.train import train

MODEL = ModelConfig(d_model=128, n_layers=2, n_heads=4, d_expert=64, n_experts=16, n_shared=1, top_k=2,
                    iterations=2, max_seq_len=128)
TRAIN = TrainConfig(batch_size=16, seq_len=128, lr=3e-3, warmup_steps=10, eval_interval=100, eval_batches=8,
                    threads=2, device="cpu")
STEPS = 600


def _check_learns(spec: RunSpec, label: str) -> None:
    r = train(spec)
    assert r.status == "ok", r.reason
    start, end = r.val_curve[0][1], r.final_val_loss
    print(f"\n{label}: val loss {start:.3f} -> {end:.3f} ({end / start:.0%} of start) over {r.steps} steps, "
          f"{r.tokens:,} tokens, {r.tokens_per_s:,.0f} tokens/s, {r.wall_s:.1f} s wall; "
          f"val curve {[(s, round(v, 3)) for s, v in r.val_curve]}; routing max_load "
          f"{r.routing.get('max_load', float('nan')):.2f}, overlap {r.routing.get('mean_overlap_next', float('nan')):.2f}")
    assert abs(start - math.log(258)) < 0.15
    assert end < 0.6 * start
    assert [v for _, v in r.val_curve] == sorted((v for _, v in r.val_curve), reverse=True)  # falls at each eval


@pytest.mark.slow
def test_small_coe_learns_builtin_arithmetic(cache_dir: Path) -> None:
    data = DataConfig(source="builtin:arithmetic", cache_dir=str(cache_dir))
    _check_learns(RunSpec(MODEL, TRAIN, data, Horizon(steps=STEPS)), "builtin:arithmetic")


@pytest.mark.slow
def test_small_coe_learns_gsm8k(gsm8k_dir: Path, cache_dir: Path) -> None:
    data = DataConfig(source=f"files:{gsm8k_dir}/train.parquet", cache_dir=str(cache_dir))
    _check_learns(RunSpec(MODEL, TRAIN, data, Horizon(steps=STEPS)), "GSM8K (files:)")
