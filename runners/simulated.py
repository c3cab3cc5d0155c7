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
               iterations) keep a share of that gain (c_iter * shared_router_share, default a half).
             - K (top-k) and n_experts: the sparsity term; more experts per activated expert adds
               effective capacity slowly (fine-grained MoE scaling), gamma small. Dense: ratio 1.
    penalties: no inner residual +0.10, outer residual +0 (settable); the lr term centres the loss on lr_opt.
    noise  = Normal(0, noise_std) seeded by (config hash, seed) + Normal(0, seed_noise_std) seeded by the
             seed alone (what every config trained with that seed shares): the same trial simulates the
             same loss, and seed i of two arms can be correlated as real batch orders make them.

Every constant is a field of `SimulationLaw` (defaults below); a spec's `simulate:` section or
`--set simulate.c_iter=0` overrides them, so statistics tests know the true arm effects and noise.

Because FLOPs per token grow with N, at a fixed budget D shrinks as N grows, so every budget level has
an IsoFLOP parabola in log N with an interior minimum at
N* ~ (alpha*A / (beta*B))**(1/(alpha+beta)) * (budget / 6)**(beta/(alpha+beta)),
about 7e4 active non-embedding params at 1e12 training FLOPs and 1.7e5 at 1e13 (6ND approximation).
The exponents are steep (alpha 1.4, beta 0.82) because the fit's data are tiny models on a templated
task, where a too-small model plateaus hard and a too-big one is still in its first few hundred steps;
they describe the `make run` scale, not GPU-scale language modelling.
A trial with lr above diverge_lr diverges (status 'diverged', NaN loss), so failure handling can be
exercised without training. Memory comes from coe_sweep.accounting.memory_estimate.
"""

from __future__ import annotations

import hashlib
import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from coe_sweep.accounting import memory_estimate, param_counts
from coe_sweep.trial import RunResult, RunSpec, TrialStatus
from runners.plan import plan_horizon

Report = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class SimulationLaw:
    """The law's constants (see the module docstring); a spec's `simulate:` section overrides any of them.

    E, A, alpha, B, beta: least-squares fit (soft-L1) to 53 real CPU trials of two iso_flops sweeps on
    builtin:arithmetic (byte tokens, 9e3-9e5 effective params, 1e5-1e7 tokens): median |error| 0.086 nats.
    The arm effects (c_iter, shared_router_share, gamma_sparsity, the residual penalties) and the noise
    are what statistics tests set to known values: `simulate: {c_iter: 0.0, noise_std: 0.02}`.
    """

    e_loss: float = 0.05  # irreducible loss, nats per token
    a_params: float = 5.2e5
    alpha: float = 1.4
    b_tokens: float = 2.4e4
    beta: float = 0.82
    c_iter: float = 0.25  # effective-capacity gain per ln(iterations)
    shared_router_share: float = 0.5  # the part of c_iter that one router shared by all iterations keeps
    gamma_sparsity: float = 0.05  # exponent of (n_experts / top_k)
    c_lr: float = 0.02
    lr_opt: float = 3e-3
    no_inner_residual_penalty: float = 0.10
    outer_residual_penalty: float = 0.0
    noise_std: float = 0.01  # per (config, seed): init and everything else one trial owns
    seed_noise_std: float = 0.0  # per seed, shared by every config trained with that seed (batch order)
    diverge_lr: float = 0.1

    @classmethod
    def from_mapping(cls, values: Mapping[str, float] | None) -> SimulationLaw:
        """Defaults overridden by `values` (a spec's `simulate:` section); unknown names raise ValueError."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values or {}) - known)
        if unknown:
            raise ValueError(f"simulate: unknown constant(s) {unknown}: expected names from {sorted(known)}")
        return cls(**{k: float(v) for k, v in (values or {}).items()})

    def effective_params(self, n_active: float, iterations: int, top_k: int, n_experts: int, *,
                         dense: bool = False, shared_router: bool = False) -> float:
        """N_eff = N * (1 + c_iter ln C) * (n_experts / K)^gamma (see the module docstring)."""
        c_iter = self.c_iter * self.shared_router_share if shared_router else self.c_iter
        sparsity = 1.0 if dense else n_experts / top_k
        return n_active * (1.0 + c_iter * math.log(iterations)) * sparsity**self.gamma_sparsity

    def loss(self, n_eff: float, tokens: float, lr: float, *, inner_residual: bool = True,
             outer_residual: bool = False) -> float:
        """Noise-free loss of the law at N_eff effective params after `tokens` tokens."""
        loss = self.e_loss + self.a_params / n_eff**self.alpha + self.b_tokens / max(tokens, 1.0) ** self.beta
        loss += self.c_lr * math.log(lr / self.lr_opt) ** 2
        if not inner_residual:
            loss += self.no_inner_residual_penalty
        if outer_residual:
            loss += self.outer_residual_penalty
        return loss

    def plan_loss(self, trial_plan: Any, tokens: float | None = None) -> float:
        """Noise-free loss of a TrialPlan's config after `tokens` (default: the plan's whole horizon,
        steps x batch x seq_len): the ground truth a simulated trial's final val loss scatters around."""
        from coe_sweep.accounting import param_counts

        spec = trial_plan.run_spec
        cfg, train = spec.model, spec.train
        n_eff = self.effective_params(max(param_counts(cfg).active_non_embedding, 1), cfg.iterations, cfg.top_k,
                                      cfg.n_experts, dense=cfg.dense, shared_router=cfg.router_mode == "shared")
        if tokens is None:
            tokens = int(trial_plan.steps) * train.batch_size * train.seq_len
        return self.loss(n_eff, tokens, train.lr, inner_residual=cfg.inner_residual,
                         outer_residual=cfg.outer_residual)


DEFAULT_LAW = SimulationLaw()


def _rng(config_hash: str, seed: int) -> random.Random:
    digest = hashlib.sha256(f"{config_hash}:{seed}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "little"))


def _eval_steps(total_steps: int, interval: int) -> list[int]:
    steps = list(range(interval, total_steps, max(interval, 1)))
    return [*steps, total_steps] if total_steps > 0 else []


def trial_noise(noise_key: str, seed: int, law: SimulationLaw = DEFAULT_LAW) -> float:
    """The final-loss noise of one (config, seed): its own part plus the part its seed shares with every
    config (deterministic, so a resumed or re-run trial simulates the same loss)."""
    own = _rng(noise_key, seed).gauss(0.0, law.noise_std)
    return own + _rng("seed", seed).gauss(0.0, law.seed_noise_std)


def simulate(run_spec: RunSpec, *, noise_key: str, seed: int = 0, report: Report | None = None,
             trial_s: float = 0.0, law: SimulationLaw = DEFAULT_LAW) -> RunResult:
    """Simulate one trial of `run_spec` under `law`; `noise_key` (the trial's config hash) and `seed` pick
    its noise.

    `report`, when given, gets the same dicts the real runner sends at each evaluation
    ({"step", "tokens", "train_loss", "val_loss", "elapsed_s"}); `trial_s` spreads that many seconds
    of wall time over the evaluations (0: as fast as possible), for demos and kill/resume tests.
    """
    start = time.perf_counter()
    cfg, train = run_spec.model, run_spec.train
    horizon = plan_horizon(run_spec)
    rng = _rng(f"{noise_key}:curve", seed)  # train-loss jitter, apart from the final-loss noise
    counts = param_counts(cfg)
    n_eff = law.effective_params(max(counts.active_non_embedding, 1), cfg.iterations, cfg.top_k, cfg.n_experts,
                                 dense=cfg.dense, shared_router=cfg.router_mode == "shared")
    tokens_per_step = horizon.tokens_per_step
    noise = trial_noise(noise_key, seed, law)
    cap = math.log(cfg.vocab_size) + 0.5  # a fresh LM sits near ln(V); the law never goes above it
    memory = memory_estimate(cfg, train.batch_size, train.seq_len)
    result = RunResult(
        status=TrialStatus.OK, train_flops_per_token=float(horizon.train_flops_per_token),
        params_total=int(counts.total), params_active=int(counts.active),
        estimated_memory_bytes=int(memory.total), peak_memory_bytes=int(memory.total),
        allocated_after_step_bytes=int(memory.weights + memory.grads + memory.optimizer),
        device="simulated", simulated=True)
    evals = _eval_steps(horizon.steps, train.eval_interval)
    diverge_step = max(1, min(horizon.steps, 3)) if train.lr > law.diverge_lr else None
    for i, step in enumerate(evals):
        if trial_s > 0:
            time.sleep(max(0.0, start + trial_s * (i + 1) / len(evals) - time.perf_counter()))
        if diverge_step is not None and step >= diverge_step:
            result.status = TrialStatus.DIVERGED
            result.reason = (f"simulated: loss is NaN at step {diverge_step} "
                             f"(train.lr={train.lr} > simulated stability limit {law.diverge_lr})")
            result.steps = diverge_step
            break
        seen_tokens = step * tokens_per_step
        val = min(cap, law.loss(n_eff, seen_tokens, train.lr, inner_residual=cfg.inner_residual,
                                 outer_residual=cfg.outer_residual) + noise)
        train_loss = val - 0.01 + rng.gauss(0.0, law.noise_std / 2)
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
