"""Simulated trials: a runner beside runners.train that evaluates a documented parametric loss law instead of
training (`coe-sweep launch --simulate`).

Torch-free. It lets the whole pipeline (Ray Tune, Optuna, MLflow, dashboard, analysis) run in
seconds, for planning a sweep and for fast tests. Nothing here claims to predict real losses.

The law (Chinchilla form, Hoffmann et al. 2022, eq. 10, refitted to real CPU-scale trials, see below):

    L(N, D) = E + A / N_eff**alpha + B / D**beta + c_lr * ln(lr / lr_opt)**2 + penalties + noise

    N      = active non-embedding parameters (coe_sweep.accounting.param_counts: what one token touches)
    D      = tokens trained (the RunSpec's horizon, resolved as runners.plan.plan_horizon trains it)
    N_eff  = N * (1 + c_iter * ln C) * (n_experts / K)**gamma
             - C (chain iterations): CoE's iterations act as extra effective capacity with diminishing
               returns (the paper's "more compositions per token"); shared routers (one router for all
               iterations) get half of that gain (c_iter / 2).
             - K (top-k) and n_experts: the sparsity term; more experts per activated expert adds
               effective capacity slowly (fine-grained MoE scaling), gamma small. Dense: ratio 1.
    penalties: no inner residual +0.10; the lr term centres the loss on lr_opt.
    noise  ~ Normal(0, NOISE_STD) seeded by (config hash, seed): the same trial simulates the same loss.

Because FLOPs per token grow with N, at a fixed budget D shrinks as N grows, so every budget level has
an IsoFLOP parabola in log N with an interior minimum at
N* ~ (alpha*A / (beta*B))**(1/(alpha+beta)) * (budget / 6)**(beta/(alpha+beta)),
about 7e4 active non-embedding params at 1e12 training FLOPs and 1.7e5 at 1e13 (6ND approximation).
The exponents are steep (alpha 1.4, beta 0.82) because the fit's data are tiny models on a templated
task, where a too-small model plateaus hard and a too-big one is still in its first few hundred steps;
they describe the `make run` scale, not GPU-scale language modelling.
A trial with lr above DIVERGE_LR diverges (status 'diverged', NaN loss), so failure handling can be
exercised without training. Memory comes from coe_sweep.accounting.memory_estimate.
"""

from __future__ import annotations

import hashlib
import math
import random
import time
from collections.abc import Callable
from typing import Any

from coe_sweep.accounting import memory_estimate, param_counts
from coe_sweep.trial import RunResult, RunSpec, TrialStatus
from runners.plan import plan_horizon

# Constants of the law (see the module docstring). E is the irreducible loss in nats per token.
# E, A, alpha, B, beta: least-squares fit (soft-L1) to 53 real CPU trials of two iso_flops sweeps on
# builtin:arithmetic (byte tokens, 9e3-9e5 effective params, 1e5-1e7 tokens): median |error| 0.086 nats.
E_LOSS = 0.05
A_PARAMS, ALPHA = 5.2e5, 1.4
B_TOKENS, BETA = 2.4e4, 0.82
C_ITER = 0.25  # effective-capacity gain per ln(iterations)
GAMMA_SPARSITY = 0.05  # exponent of (n_experts / top_k)
C_LR, LR_OPT = 0.02, 3e-3
NO_INNER_RESIDUAL_PENALTY = 0.10
NOISE_STD = 0.01
DIVERGE_LR = 0.1

Report = Callable[[dict[str, Any]], None]


def effective_params(n_active: float, iterations: int, top_k: int, n_experts: int, *,
                     dense: bool = False, shared_router: bool = False) -> float:
    """N_eff = N * (1 + c_iter ln C) * (n_experts / K)^gamma (see the module docstring)."""
    c_iter = C_ITER / 2 if shared_router else C_ITER
    sparsity = 1.0 if dense else n_experts / top_k
    return n_active * (1.0 + c_iter * math.log(iterations)) * sparsity**GAMMA_SPARSITY


def law_loss(n_eff: float, tokens: float, lr: float, *, inner_residual: bool = True) -> float:
    """Noise-free loss of the law at N_eff effective params after `tokens` tokens."""
    loss = E_LOSS + A_PARAMS / n_eff**ALPHA + B_TOKENS / max(tokens, 1.0) ** BETA
    loss += C_LR * math.log(lr / LR_OPT) ** 2
    if not inner_residual:
        loss += NO_INNER_RESIDUAL_PENALTY
    return loss


def _rng(config_hash: str, seed: int) -> random.Random:
    digest = hashlib.sha256(f"{config_hash}:{seed}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "little"))


def _eval_steps(total_steps: int, interval: int) -> list[int]:
    steps = list(range(interval, total_steps, max(interval, 1)))
    return [*steps, total_steps] if total_steps > 0 else []


def simulate(run_spec: RunSpec, *, noise_key: str, seed: int = 0, report: Report | None = None,
             trial_s: float = 0.0) -> RunResult:
    """Simulate one trial of `run_spec`; `noise_key` (the trial's config hash) and `seed` pick its noise.

    `report`, when given, gets the same dicts the real runner sends at each evaluation
    ({"step", "tokens", "train_loss", "val_loss", "elapsed_s"}); `trial_s` spreads that many seconds
    of wall time over the evaluations (0: as fast as possible), for demos and kill/resume tests.
    """
    start = time.perf_counter()
    cfg, train = run_spec.model, run_spec.train
    horizon = plan_horizon(run_spec)
    rng = _rng(noise_key, seed)
    counts = param_counts(cfg)
    n_eff = effective_params(max(counts.active_non_embedding, 1), cfg.iterations, cfg.top_k, cfg.n_experts,
                             dense=cfg.dense, shared_router=cfg.router_mode == "shared")
    tokens_per_step = horizon.tokens_per_step
    noise = rng.gauss(0.0, NOISE_STD)
    cap = math.log(cfg.vocab_size) + 0.5  # a fresh LM sits near ln(V); the law never goes above it
    memory = memory_estimate(cfg, train.batch_size, train.seq_len)
    result = RunResult(
        status=TrialStatus.OK, train_flops_per_token=float(horizon.train_flops_per_token),
        params_total=int(counts.total), params_active=int(counts.active),
        estimated_memory_bytes=int(memory.total), peak_memory_bytes=int(memory.total),
        allocated_after_step_bytes=int(memory.weights + memory.grads + memory.optimizer),
        device="simulated", simulated=True)
    evals = _eval_steps(horizon.steps, train.eval_interval)
    diverge_step = max(1, min(horizon.steps, 3)) if train.lr > DIVERGE_LR else None
    for i, step in enumerate(evals):
        if trial_s > 0:
            time.sleep(max(0.0, start + trial_s * (i + 1) / len(evals) - time.perf_counter()))
        if diverge_step is not None and step >= diverge_step:
            result.status = TrialStatus.DIVERGED
            result.reason = (f"simulated: loss is NaN at step {diverge_step} "
                             f"(train.lr={train.lr} > simulated stability limit {DIVERGE_LR})")
            result.steps = diverge_step
            break
        seen_tokens = step * tokens_per_step
        val = min(cap, law_loss(n_eff, seen_tokens, train.lr, inner_residual=cfg.inner_residual) + noise)
        train_loss = val - 0.01 + rng.gauss(0.0, NOISE_STD / 2)
        result.val_curve.append((step, val))
        result.train_curve.append((step, train_loss))
        result.steps, result.tokens = step, seen_tokens
        if report is not None:
            report({"step": step, "tokens": seen_tokens, "train_loss": train_loss, "val_loss": val,
                    "elapsed_s": time.perf_counter() - start})
    if result.status == TrialStatus.OK and result.val_curve:
        result.final_val_loss = result.val_curve[-1][1]
        result.final_train_loss = result.train_curve[-1][1]
    result.tokens = result.steps * tokens_per_step
    result.flops = result.train_flops_per_token * result.tokens
    result.wall_s = time.perf_counter() - start
    result.tokens_per_s = result.tokens / trial_s if trial_s > 0 else None
    return result
