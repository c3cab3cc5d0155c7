"""The Ray Tune trainable: one sweep trial, from its trial config to a final report.

Ray-free on purpose: coe_sweep.search.orchestrate (the one module that imports ray) binds the constant
context with `tune.with_parameters(run_trial, spec=..., report=ray.tune.report, ...)`, so the search
space only carries what varies per trial:

    config = {"params": {sampled field -> value}, "budget_label": str, "config_hash": str}

The trial rebuilds its TrialPlan (and so its RunSpec) from the spec, checks the config hash, then
trains (`runners.train.train`) or simulates (`coe_sweep.search.simulate`). Each evaluation becomes an
intermediate report (`step`, `tokens`, `val_loss`, `train_loss`: what ASHA and the live display read);
the last report carries the objectives and the whole `RunResult.to_dict()` under `run_result`.
Exceptions are turned into a failed RunResult: a trial never kills the sweep.
"""

from __future__ import annotations

import logging
import math
import time
import traceback
from collections.abc import Callable
from typing import Any

from coe_sweep.run import RunResult

log = logging.getLogger(__name__)

Report = Callable[[dict[str, Any]], None]
RUN_RESULT_KEY = "run_result"
# Objective aliases: what a spec's `search.objectives` may name -> RunResult attribute.
OBJECTIVE_ATTRS = {"val_loss": "final_val_loss", "train_loss": "final_train_loss", "train_flops": "flops",
                   "memory": "peak_memory_bytes", "peak_memory": "peak_memory_bytes"}


def objective_value(result: RunResult, name: str) -> float | None:
    """The value of objective `name` for a finished trial (None when it has none, e.g. diverged)."""
    value = getattr(result, OBJECTIVE_ATTRS.get(name, name), None)
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def final_metrics(result: RunResult, objectives: list[str] | tuple[str, ...] = ("val_loss",)) -> dict[str, Any]:
    """The last report: objectives (only when the trial produced them), counters and the whole result."""
    metrics: dict[str, Any] = {"status": result.status, "step": result.steps, "tokens": result.tokens,
                               RUN_RESULT_KEY: result.to_dict()}
    if result.status == "ok":
        for name in objectives:
            value = objective_value(result, name)
            if value is not None:
                metrics[name] = value
    return metrics


def _forward_evals(report: Report, start_s: float) -> Report:
    def forward(metrics: dict[str, Any]) -> None:
        val = metrics.get("val_loss")
        if val is None or not math.isfinite(val):  # train-loss-only ticks stay in the final curves
            return
        report({"step": int(metrics.get("step", 0)), "tokens": int(metrics.get("tokens", 0)),
                "val_loss": float(val), "train_loss": float(metrics.get("train_loss") or math.nan),
                "elapsed_s": time.perf_counter() - start_s})
    return forward


def _plan(spec: Any, config: dict[str, Any]) -> Any:
    from coe_sweep.search.candidates import budgets, plan_trial

    by_label = {b.label: b for b in budgets(spec)}
    plan = plan_trial(spec, by_label[config["budget_label"]], dict(config["params"]))
    if plan.config_hash != config["config_hash"]:
        raise RuntimeError(f"trial config hash {config['config_hash']} != rebuilt plan's {plan.config_hash}: "
                           "the driver and the worker see different code or spec")
    return plan


def run_trial(config: dict[str, Any], *, spec: Any, report: Report, simulate: bool = False,
              simulate_trial_s: float = 0.0, objectives: tuple[str, ...] = ("val_loss",)) -> None:
    """Ray Tune function trainable (see the module docstring). Returns nothing: it reports."""
    start_s = time.perf_counter()
    forward = _forward_evals(report, start_s)
    try:
        plan = _plan(spec, config)
        if simulate:
            from coe_sweep.search.simulate import SimulationLaw
            from coe_sweep.search.simulate import simulate as simulate_trial

            law = SimulationLaw.from_mapping(spec.simulate.law_values() if spec.simulate else None)
            result = simulate_trial(plan, seed=plan.run_spec.train.seed, report=forward, trial_s=simulate_trial_s,
                                    law=law)
        else:
            from runners.train import train

            result = train(plan.run_spec, report=forward)
    except Exception as exc:  # the runner raises only for a bad RunSpec; anything else is a bug, recorded
        log.exception("trial %s raised", config.get("config_hash"))
        tail = traceback.format_exc(limit=3).strip().splitlines()[-1]
        result = RunResult(status="failed", reason=f"{type(exc).__name__}: {exc} ({tail})"[:2000],
                           wall_s=time.perf_counter() - start_s, simulated=simulate)
    report(final_metrics(result, objectives))
