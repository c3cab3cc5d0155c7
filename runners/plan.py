"""What a RunSpec asks for, checked and resolved before anything is trained (torch-free).

`validate_run_spec` raises ValueError naming the field, value and what is accepted.
`plan_horizon` turns the horizon into steps by explicit precedence, steps > tokens > flops:
tokens = flops / train_flops_per_token(model, seq_len) (coe_sweep.accounting, floor), and
steps = ceil(tokens / (batch_size * seq_len)), at least 1. Tokens trained = steps * batch * seq_len,
which may exceed the requested tokens by less than one batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from coe_sweep.run import RunSpec, TrainConfig, tokenizer_vocab_size

HorizonSource = Literal["steps", "tokens", "flops"]

_CHOICES = {"schedule": ("constant", "cosine", "linear"), "device": ("auto", "cpu", "cuda"),
            "dtype": ("auto", "fp32", "bf16"), "compile": ("off", "on", "auto")}


@dataclass(frozen=True)
class HorizonPlan:
    steps: int
    tokens_per_step: int  # batch_size * seq_len
    train_flops_per_token: float
    source: HorizonSource  # which horizon field decided

    @property
    def tokens(self) -> int:
        return self.steps * self.tokens_per_step

    @property
    def flops(self) -> float:
        return self.train_flops_per_token * self.tokens


def plan_horizon(spec: RunSpec) -> HorizonPlan:
    from coe_sweep.accounting import tokens_for_flops, train_flops_per_token

    tc, h = spec.train, spec.horizon
    per_step = tc.batch_size * tc.seq_len
    flops_per_token = train_flops_per_token(spec.model, tc.seq_len)
    if h.steps is not None:
        return HorizonPlan(int(h.steps), per_step, flops_per_token, "steps")
    if h.tokens is not None:
        return HorizonPlan(max(1, math.ceil(h.tokens / per_step)), per_step, flops_per_token, "tokens")
    tokens = tokens_for_flops(spec.model, tc.seq_len, float(h.flops))
    return HorizonPlan(max(1, math.ceil(tokens / per_step)), per_step, flops_per_token, "flops")


def validate_run_spec(spec: RunSpec) -> None:
    """Raise ValueError for a RunSpec that cannot train (ModelConfig and Horizon validate themselves)."""
    tc = spec.train
    _check_train(tc)
    if tc.seq_len > spec.model.max_seq_len:
        _fail("seq_len", tc.seq_len, f"<= ModelConfig.max_seq_len={spec.model.max_seq_len} "
              "(or raise model.max_seq_len)")
    vocab = tokenizer_vocab_size(spec.data.tokenizer)
    if spec.model.vocab_size != vocab:
        raise ValueError(f"ModelConfig.vocab_size={spec.model.vocab_size} is invalid for "
                         f"DataConfig.tokenizer={spec.data.tokenizer!r}: expected vocab_size={vocab} "
                         "(the model's vocabulary must equal the tokenizer's)")
    if spec.horizon.steps is not None and not _is_int(spec.horizon.steps, 1):
        raise ValueError(f"Horizon.steps={spec.horizon.steps!r} is invalid: expected an integer >= 1")


def _check_train(tc: TrainConfig) -> None:
    for name in ("batch_size", "seq_len", "eval_interval"):
        if not _is_int(getattr(tc, name), 1):
            _fail(name, getattr(tc, name), "an integer >= 1")
    for name in ("warmup_steps", "seed"):
        if not _is_int(getattr(tc, name), 0):
            _fail(name, getattr(tc, name), "an integer >= 0")
    for name in ("eval_batches", "threads"):
        value = getattr(tc, name)
        if value is not None and not _is_int(value, 1):
            _fail(name, value, "null or an integer >= 1")
    if not _is_number(tc.lr) or tc.lr <= 0:
        _fail("lr", tc.lr, "a number > 0")
    if not _is_number(tc.min_lr_ratio) or not 0 <= tc.min_lr_ratio <= 1:
        _fail("min_lr_ratio", tc.min_lr_ratio, "a number in [0, 1]")
    for name in ("beta1", "beta2"):
        if not _is_number(getattr(tc, name)) or not 0 <= getattr(tc, name) < 1:
            _fail(name, getattr(tc, name), "a number in [0, 1)")
    for name in ("weight_decay", "grad_clip"):
        if not _is_number(getattr(tc, name)) or getattr(tc, name) < 0:
            _fail(name, getattr(tc, name), "a number >= 0 (grad_clip 0 disables clipping)")
    for name, accepted in _CHOICES.items():
        if getattr(tc, name) not in accepted:
            _fail(name, getattr(tc, name), f"one of {', '.join(accepted)}")


def _is_int(value: object, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _fail(name: str, value: object, accepted: str) -> None:
    raise ValueError(f"TrainConfig.{name}={value!r} is invalid: expected {accepted}")
