"""Parameters, FLOPs and memory of a CoE/MoE LM as pure functions of its ModelConfig.

No torch here (and nothing heavy): the YAML planner, the search space and the dashboard use these
without importing the model. `tests/accounting/` holds them against the built model: parameter
counts against `sum(p.numel())`, FLOPs against torch's FlopCounterMode, memory against a
measured training step.
"""

from coe_sweep.accounting.flops import (
    TRAIN_FLOPS_MULTIPLIER,
    FlopTerms,
    forward_flops_per_token,
    six_n_flops_per_token,
    tokens_for_flops,
    train_flops_per_token,
)
from coe_sweep.accounting.memory import MemoryEstimate, memory_estimate
from coe_sweep.accounting.params import (
    ParamCounts,
    distinct_experts_per_token,
    param_counts,
    params_active,
    params_total,
)

__all__ = [
    "TRAIN_FLOPS_MULTIPLIER",
    "FlopTerms",
    "MemoryEstimate",
    "ParamCounts",
    "distinct_experts_per_token",
    "forward_flops_per_token",
    "memory_estimate",
    "param_counts",
    "params_active",
    "params_total",
    "six_n_flops_per_token",
    "tokens_for_flops",
    "train_flops_per_token",
]
