"""Optimizer and learning-rate schedule of a trial: AdamW with warmup then constant/cosine/linear.

Weight decay applies to matrices and expert tensors (dim >= 2: embeddings, projections, routers,
experts) and not to 1-D parameters (RMSNorm weights; the model has no biases). The paper's
reference setting is AdamW 3e-4, betas (0.9, 0.95), wd 0.01, 100 warmup steps then constant.
AdamW is torch's fused implementation (one kernel per parameter group, CPU and CUDA; ~4x faster
per step than the per-tensor loop here), which also takes the gradient clipping and the skip of a
non-finite step as device tensors (`grad_scale`, `found_inf`, see runners/step.py).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from coe_sweep.trial import TrainConfig


def build_optimizer(model: nn.Module, tc: TrainConfig) -> torch.optim.AdamW:
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [{"params": decay, "weight_decay": tc.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=tc.lr, betas=(tc.beta1, tc.beta2), eps=1e-8, fused=True)


def lr_factor(step: int, total_steps: int, tc: TrainConfig) -> float:
    """Multiplier of `tc.lr` for optimizer step `step` (0-based) of `total_steps`.

    Linear warmup over `warmup_steps` (step s uses (s + 1) / warmup), then constant, or a cosine /
    linear decay from 1 to `min_lr_ratio` over the remaining steps.
    """
    if step < tc.warmup_steps:
        return (step + 1) / tc.warmup_steps
    if tc.schedule == "constant":
        return 1.0
    decay_steps = max(1, total_steps - tc.warmup_steps)
    progress = min(1.0, (step - tc.warmup_steps) / decay_steps)
    if tc.schedule == "cosine":
        shape = 0.5 * (1.0 + math.cos(math.pi * progress))
    else:  # linear
        shape = 1.0 - progress
    return tc.min_lr_ratio + (1.0 - tc.min_lr_ratio) * shape


def build_schedule(optimizer: torch.optim.Optimizer, total_steps: int,
                   tc: TrainConfig) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, total_steps, tc))
