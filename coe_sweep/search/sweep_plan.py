"""What a sweep will do, computed without running anything: the data behind `coe-sweep plan`.

Per budget level: the candidate table (grid points, floats at their representative value; a seeded
sample when the grid is too large), feasible/rejected counts with reasons, the trials the sweep runs
there, their FLOPs and an estimated wall time; then the sweep totals.

Wall-time model (a rough planning figure, not a promise):
  trial_s = (train_flops + eval_flops) / rate + steps x step_overhead + TRIAL_OVERHEAD_S
  step_overhead = STEP_OVERHEAD_S + n_layers x (STEP_OVERHEAD_PER_LAYER_S
                                                + iterations x STEP_OVERHEAD_PER_LAYER_ITER_S)
  rate    = CPU_TRAIN_FLOPS_PER_S_PER_CPU x cpus_per_trial   (no GPU)
          = GPU_TRAIN_FLOPS_PER_S x gpus_per_trial           (with GPUs; `auto` resolved by
                                                              coe_sweep.search.resources, data-parallel
                                                              workers counted as perfectly scaling)
  eval_flops = evaluations x validation tokens x forward FLOPs/token, evaluations = steps /
               eval_interval + 1, validation tokens = data.val_tokens (or eval_batches x batch x seq_len)
  sweep_s = sum of trial_s / slots, slots = max_concurrent, or the CPUs (num_cpus, else this machine's)
            / cpus_per_trial (at least 1)
Constants measured on this project's 2-core machine, one torch thread per trial. Rate: a 1.2M-parameter
CoE trained at 9.7k tokens/s = 6.0e10 train FLOPs/s, a 0.29M-parameter MoE at 4.3e10 FLOPs/s: ~5e10.
Step overhead (Python and kernel dispatch per layer and per chain iteration, optimizer, data): fitted by
`benchmarks/fit_plan_time.py --measure search_spaces/iso_flops.yaml` after issue 14 (head_dim 16,
fused qkv and gate|up, one-op RMSNorm and rotary, fused AdamW, no per-step syncs): the runner's own
step on all 80 distinct models of iso_flops, the fastest of 15 steps each in process CPU time,
non-negative least squares with the rate held at 5e10: 3.6 ms + 1.0 ms per layer + 1.6 ms per
layer-iteration per step (each config within 23%, median 7%). The same fit on the code before
issue 14 (4 fixed heads, d_model 8-64) gave 0.9 + 10.8 + 1.1 ms. These are steps with a core to
themselves: a make run shares 2 cores between 2 trials (and whatever else runs), so expect more. On
the machine of that fit, loaded by other jobs (load average 15-20), the 24-trial make run took 45.5
min; least squares on its trials' wall_s gave ~4x these constants. `coe-sweep plan --calibrate`
re-measures the compute rate on the machine at hand.
Trials per level follow coe_sweep.search.planned.planned_trials (what `launch` runs). A sampler's time is
estimated with the mean trial time of the level's feasible candidates. Every trial at a FLOPs level
spends the level.
"""

from __future__ import annotations

import math
import os
import random
from typing import TYPE_CHECKING, Any

from coe_sweep.search.candidates import TrialPlan, plan_trial
from coe_sweep.search.planned import planned_trials
from coe_sweep.search.resources import TrialResources, trial_resources
from coe_sweep.search.space import MAX_GRID_POINTS, grid_points, grid_size, is_enumerable, sample_point
from coe_sweep.spec.arms import possible_arms

if TYPE_CHECKING:
    from coe_sweep.spec.schema import SweepSpec

CPU_TRAIN_FLOPS_PER_S_PER_CPU = 5e10  # measured, see the module docstring
GPU_TRAIN_FLOPS_PER_S = 5e12  # effective, for the small models of these sweeps (low MFU); rough
TRIAL_OVERHEAD_S = 2.0  # data loading from cache, model build, Ray actor reuse, MLflow logging
STEP_OVERHEAD_S = 0.0036  # per optimizer step, beyond the FLOPs (fitted, see the module docstring)
STEP_OVERHEAD_PER_LAYER_S = 0.0010  # ... plus this per layer
STEP_OVERHEAD_PER_LAYER_ITER_S = 0.0016  # ... plus this per layer and chain iteration
MAX_PLANNED_POINTS = 2_000  # points shown per level when the grid is larger (a seeded sample)


def trial_seconds(plan: TrialPlan, spec: SweepSpec, cpu_rate: float = CPU_TRAIN_FLOPS_PER_S_PER_CPU,
                  resources: TrialResources | None = None) -> float:
    """Estimated wall seconds of one trial (see the module docstring)."""
    if plan.run_spec is None:
        return 0.0
    train, data = plan.run_spec.train, plan.run_spec.data
    res = resources or trial_resources(spec)
    if res.gpus_per_trial > 0:
        rate = GPU_TRAIN_FLOPS_PER_S * res.gpus_per_trial
    else:
        rate = cpu_rate * res.cpus_per_trial
    evaluations = plan.steps // train.eval_interval + 1
    val_tokens = data.val_tokens if train.eval_batches is None else train.eval_batches * train.batch_size * train.seq_len
    eval_flops = evaluations * val_tokens * plan.flop_terms.get("total", 0.0)
    model = plan.run_spec.model
    step_s = STEP_OVERHEAD_S + model.n_layers * (STEP_OVERHEAD_PER_LAYER_S
                                                 + model.iterations * STEP_OVERHEAD_PER_LAYER_ITER_S)
    return (plan.train_flops + eval_flops) / rate + plan.steps * step_s + TRIAL_OVERHEAD_S


def concurrent_slots(spec: SweepSpec) -> int:
    if spec.cluster.max_concurrent is not None:
        return spec.cluster.max_concurrent
    cpus = spec.cluster.num_cpus or os.cpu_count() or 1
    return max(1, math.floor(cpus / spec.cluster.cpus_per_trial))


def planned_points(spec: SweepSpec) -> tuple[list[dict[str, Any]], bool]:
    """The grid (exhaustive=True when it has no float range), or a seeded sample of a large grid."""
    size = grid_size(spec)
    if size <= MAX_GRID_POINTS:
        return list(grid_points(spec)), is_enumerable(spec)
    rng = random.Random(spec.search.seed)
    return [sample_point(spec, rng) for _ in range(MAX_PLANNED_POINTS)], False


def candidate_row(plan: TrialPlan, spec: SweepSpec, cpu_rate: float, resources: TrialResources) -> dict[str, Any]:
    return {
        "config": plan.fields, "sampled": plan.sampled, "config_hash": plan.config_hash, "family": plan.family,
        "arm": plan.arm,
        "params_total": plan.params_total, "params_active": plan.params_active,
        "forward_flops_per_token": plan.flop_terms, "train_flops_per_token": plan.train_flops_per_token,
        "tokens": plan.tokens, "steps": plan.steps, "memory_bytes": plan.memory_bytes,
        "feasible": plan.feasible, "reason": plan.reason, "failed_checks": list(plan.failed_checks),
        "estimated_trial_s": round(trial_seconds(plan, spec, cpu_rate, resources), 3),
    }


def build_plan(spec: SweepSpec, cpu_rate: float = CPU_TRAIN_FLOPS_PER_S_PER_CPU,
               gpu_memory_bytes: int | None = None) -> dict[str, Any]:
    """The whole plan as JSON-able data (what `coe-sweep plan --format json` prints). `gpu_memory_bytes`:
    one GPU's memory, for gpus_per_trial: auto (None: no GPU, so auto is 0)."""
    points, exhaustive = planned_points(spec)
    res = trial_resources(spec, gpu_memory_bytes)
    slots = concurrent_slots(spec)
    levels: list[dict[str, Any]] = []
    for planned in planned_trials(spec):
        budget = planned.budget
        plans = [plan_trial(spec, budget, point) for point in points]
        feasible = [p for p in plans if p.feasible]
        rejected_by: dict[str, int] = {}
        for p in plans:
            if not p.feasible:
                rejected_by[p.failed_checks[0]] = rejected_by.get(p.failed_checks[0], 0) + 1
        trials, level_flops = planned.trials, planned.planned_flops
        if planned.grid is not None:
            trial_s = planned.seeds * sum(trial_seconds(p, spec, cpu_rate, res) for p in planned.grid)
        else:  # a sampler: the mean trial of the level's feasible candidates
            mean_s = sum(trial_seconds(p, spec, cpu_rate, res) for p in feasible) / len(feasible) if feasible else 0.0
            trial_s = trials * mean_s
            if budget.flops is None and feasible:
                level_flops = trials * sum(p.train_flops for p in feasible) / len(feasible)
        levels.append({
            "label": budget.label, "flops": budget.flops, "tokens": budget.tokens,
            "candidates": [candidate_row(p, spec, cpu_rate, res) for p in plans],
            "n_candidates": len(plans), "n_feasible": len(feasible), "n_rejected": len(plans) - len(feasible),
            "rejected_by": rejected_by, "configs": planned.configs, "seeds": planned.seeds, "trials": trials,
            "planned_flops": level_flops,
            "estimated_trial_s_sum": round(trial_s, 3),
        })
    total_trial_s = sum(level["estimated_trial_s_sum"] for level in levels)
    return {
        "name": spec.name, "spec_hash": spec.spec_hash(), "algorithm": spec.search.algorithm,
        "objectives": spec.search.objectives, "space": list(spec.space), "grid_size": grid_size(spec),
        "seeds": spec.search.seeds, "arms": possible_arms(spec), "baseline": spec.analysis.baseline,
        "exhaustive": exhaustive, "budgets": levels,
        "total_trials": sum(level["trials"] for level in levels),
        "total_flops": sum(level["planned_flops"] for level in levels),
        "concurrent_slots": slots, "estimated_wall_s": round(total_trial_s / slots, 1),
        "throughput_model": {
            "cpu_train_flops_per_s_per_cpu": cpu_rate, "gpu_train_flops_per_s": GPU_TRAIN_FLOPS_PER_S,
            "trial_overhead_s": TRIAL_OVERHEAD_S, "step_overhead_s": STEP_OVERHEAD_S,
            "step_overhead_per_layer_s": STEP_OVERHEAD_PER_LAYER_S,
            "step_overhead_per_layer_iteration_s": STEP_OVERHEAD_PER_LAYER_ITER_S,
            "cpus_per_trial": res.cpus_per_trial,
            "gpus_per_trial": res.gpus_per_trial,  # resolved: `auto` becomes its fraction
            "gpus_per_trial_spec": spec.cluster.gpus_per_trial,
            "trials_per_gpu": res.trials_per_gpu,
            "workers_per_trial": res.workers,
        },
    }


def calibrate_cpu_rate(steps: int = 3) -> float:
    """Measured train FLOPs/s per CPU of one small model on this machine (imports torch and runners)."""
    import time

    import torch

    from coe_sweep.accounting import train_flops_per_token
    from coe_sweep.model.config import ModelConfig
    from coe_sweep.model.lm import CoELM

    threads = torch.get_num_threads()
    cfg = ModelConfig(d_model=128, n_layers=2, n_heads=4, d_expert=128, n_experts=8, top_k=2, max_seq_len=128)
    model = CoELM(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    idx = torch.randint(0, cfg.vocab_size, (16, 129))
    elapsed = 0.0
    for step in range(steps + 1):
        start = time.perf_counter()
        out = model(idx[:, :-1], targets_BT=idx[:, 1:])
        (out.loss + out.aux_loss).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step:  # the first step warms up allocators and kernels
            elapsed += time.perf_counter() - start
    tokens = steps * 16 * 128
    return tokens * train_flops_per_token(cfg, 128) / elapsed / threads
