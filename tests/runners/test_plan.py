"""runners.plan (horizon precedence and arithmetic, RunSpec validation) and runners.optim (schedules)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

import pytest

from coe_sweep.accounting import train_flops_per_token
from coe_sweep.trial import Horizon, RunSpec, TrainConfig
from runners.optim import lr_factor
from runners.plan import plan_horizon, validate_run_spec

SpecFactory = Callable[..., RunSpec]


def test_steps_win_over_tokens_and_flops(tiny_spec: SpecFactory) -> None:
    plan = plan_horizon(tiny_spec(horizon=Horizon(steps=7, tokens=10**9, flops=1e20)))
    assert (plan.steps, plan.source) == (7, "steps")
    assert plan.tokens == 7 * 4 * 32 and plan.tokens_per_step == 128


def test_tokens_win_over_flops_and_round_up_to_whole_steps(tiny_spec: SpecFactory) -> None:
    plan = plan_horizon(tiny_spec(horizon=Horizon(tokens=1000, flops=1e20)))
    assert (plan.steps, plan.source) == (math.ceil(1000 / 128), "tokens") == (8, "tokens")
    assert plan.tokens == 1024  # steps * batch * seq_len, at most one batch over the request
    assert plan_horizon(tiny_spec(horizon=Horizon(tokens=1))).steps == 1


def test_flops_horizon_uses_the_analytic_train_flops_per_token(tiny_spec: SpecFactory) -> None:
    spec = tiny_spec(horizon=Horizon(flops=3e9))
    per_token = train_flops_per_token(spec.model, spec.train.seq_len)
    plan = plan_horizon(spec)
    assert plan.source == "flops" and plan.train_flops_per_token == per_token
    assert plan.steps == math.ceil(int(3e9 // per_token) / 128)
    assert plan.flops == pytest.approx(per_token * plan.steps * 128)
    assert plan.flops >= 3e9 - per_token * 128  # within one batch of the budget
    assert plan_horizon(tiny_spec(horizon=Horizon(flops=1.0))).steps == 1  # at least one step


@pytest.mark.parametrize("field, value, accepted", [
    ("batch_size", 0, r"integer in \[1, 65536\]"), ("lr", -1.0, r"in \(0, 10000\]"),
    ("schedule", "step", "constant, cosine, linear"), ("beta2", 1.0, r"\[0, 1\)"), ("device", "tpu", "auto, cpu, cuda"),
    ("eval_interval", 0, r"in \[1, "), ("min_lr_ratio", 2.0, r"\[0, 1\]"), ("threads", 0, "null or an integer in"),
    ("lr", float("nan"), "a number"), ("seed", True, "an integer"), ("batch_size", 2.0, "an integer"),
])
def test_bad_train_fields_name_field_value_and_accepted(tiny_spec: SpecFactory, field: str, value: object,
                                                        accepted: str) -> None:
    """TrainConfig validates itself when built: a RunSpec cannot even hold a bad field."""
    spec = tiny_spec()
    with pytest.raises(ValueError, match=rf"TrainConfig\.{field}={value!r}.*{accepted}".replace("'", ".")):
        replace(spec.train, **{field: value})


def test_model_vocab_must_equal_the_tokenizer_vocab(tiny_spec: SpecFactory) -> None:
    with pytest.raises(ValueError, match=r"vocab_size=300 .*tokenizer='byte'.*expected vocab_size=258"):
        validate_run_spec(tiny_spec(model={"vocab_size": 300}))
    with pytest.raises(ValueError, match=r"expected vocab_size=512"):
        validate_run_spec(tiny_spec(data={"tokenizer": "bpe:512"}))
    validate_run_spec(tiny_spec(model={"vocab_size": 512}, data={"tokenizer": "bpe:512"}))


def test_seq_len_beyond_the_model_is_rejected(tiny_spec: SpecFactory) -> None:
    with pytest.raises(ValueError, match=r"TrainConfig\.seq_len=64 .*max_seq_len=32"):
        validate_run_spec(tiny_spec(train={"seq_len": 64}))


def test_schedules_warm_up_then_hold_or_decay() -> None:
    tc = TrainConfig(warmup_steps=4, min_lr_ratio=0.1)
    assert [lr_factor(s, 20, tc) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert all(lr_factor(s, 20, tc) == 1.0 for s in range(4, 20))
    cos = replace(tc, schedule="cosine")
    lin = replace(tc, schedule="linear")
    assert lr_factor(4, 20, cos) == lr_factor(4, 20, lin) == 1.0
    assert lr_factor(12, 20, cos) == pytest.approx(0.55) and lr_factor(12, 20, lin) == pytest.approx(0.55)
    assert lr_factor(20, 20, cos) == pytest.approx(0.1) and lr_factor(20, 20, lin) == pytest.approx(0.1)
    assert lr_factor(8, 20, cos) > lr_factor(8, 20, lin)  # cosine decays slower at first
    assert lr_factor(0, 20, replace(tc, warmup_steps=0)) == 1.0
