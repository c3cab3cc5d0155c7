"""What a RunSpec asks for, checked and resolved before anything is trained (torch-free).

`validate_run_spec` raises ValueError naming the field, value and what is accepted when the parts of a
RunSpec do not fit together (TrainConfig, DataConfig, Horizon and ModelConfig validate themselves).
`plan_horizon` turns the horizon into steps by explicit precedence, steps > tokens > flops:
tokens = flops / train_flops_per_token(model, seq_len) (coe_sweep.accounting, floor), and
steps = ceil(tokens / (batch_size * seq_len)), at least 1. Tokens trained = steps * batch * seq_len,
which may exceed the requested tokens by less than one batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from coe_sweep.trial import RunSpec, tokenizer_vocab_size

HorizonSource = Literal["steps", "tokens", "flops"]


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
    assert h.flops is not None  # Horizon guarantees one of steps, tokens, flops
    tokens = tokens_for_flops(spec.model, tc.seq_len, h.flops)
    return HorizonPlan(max(1, math.ceil(tokens / per_step)), per_step, flops_per_token, "flops")


def validate_run_spec(spec: RunSpec) -> None:
    """Raise ValueError for a RunSpec whose parts do not fit together (each part validated itself when built)."""
    tc = spec.train
    if tc.seq_len > spec.model.max_seq_len:
        raise ValueError(f"TrainConfig.seq_len={tc.seq_len!r} is invalid: expected <= "
                         f"ModelConfig.max_seq_len={spec.model.max_seq_len} (or raise model.max_seq_len)")
    vocab = tokenizer_vocab_size(spec.data.tokenizer)
    if spec.model.vocab_size != vocab:
        raise ValueError(f"ModelConfig.vocab_size={spec.model.vocab_size} is invalid for "
                         f"DataConfig.tokenizer={spec.data.tokenizer!r}: expected vocab_size={vocab} "
                         "(the model's vocabulary must equal the tokenizer's)")
