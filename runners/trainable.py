"""The Ray Tune trainable: one sweep trial, from its trial config to a final report.

Ray-free on purpose: coe_sweep.sweep (the one package that imports ray) binds the constant context
with `tune.with_parameters(run_trial, report=ray.tune.report, ...)`. The trial config is everything
the trial is, decided by the driver (`trial_config`); the worker never plans:

    config = {"run_spec": RunSpec.to_dict(), "trial": TrialIdentity.to_dict()}

The trial trains its RunSpec (`runners.train.train`) or simulates it (`runners.simulated.simulate`).
Evaluations become intermediate reports (`step`, `tokens`, `val_loss`, `train_loss`: what ASHA reads)
only when `intermediate` is set; the last report carries the objectives and the whole
`RunResult.to_dict()` under `run_result`. Exceptions are turned into a failed RunResult: a trial never
kills the sweep.
"""

from __future__ import annotations

import logging
import math
import time
import traceback
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from coe_sweep.trial import RunResult, RunSpec, TrialIdentity, TrialStatus, objective_value

if TYPE_CHECKING:
    from runners.distributed import DataParallel

log = logging.getLogger(__name__)

Report = Callable[[dict[str, Any]], None]
RUN_RESULT_KEY = "run_result"
RUN_SPEC_KEY, TRIAL_KEY = "run_spec", "trial"


def trial_config(run_spec: RunSpec, identity: TrialIdentity) -> dict[str, Any]:
    """The Tune config of one trial: its whole run spec and its identity."""
    return {RUN_SPEC_KEY: run_spec.to_dict(), TRIAL_KEY: identity.to_dict()}


def trial_identity(config: Mapping[str, Any]) -> TrialIdentity:
    return TrialIdentity.from_dict(config[TRIAL_KEY])


def final_metrics(result: RunResult, objectives: tuple[str, ...]) -> dict[str, Any]:
    """The last report: objectives (only when the trial produced them), counters and the whole result."""
    metrics: dict[str, Any] = {"status": result.status.value, "step": result.steps, "tokens": result.tokens,
                               RUN_RESULT_KEY: result.to_dict()}
    if result.status == TrialStatus.OK:
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


def run_trial(config: dict[str, Any], *, report: Report, simulate: bool = False, simulate_trial_s: float = 0.0,
              objectives: tuple[str, ...] = ("val_loss",), intermediate: bool = True,
              simulate_law: Mapping[str, float] | None = None, data_parallel: DataParallel | None = None) -> None:
    """Ray Tune function trainable (see the module docstring). Returns nothing: it reports. With
    `data_parallel`, one rank of a data-parallel trial (coe_sweep.sweep.data_parallel runs the ranks)."""
    start_s = time.perf_counter()
    forward = _forward_evals(report, start_s) if intermediate else None
    identity = trial_identity(config)
    try:
        run_spec = RunSpec.from_dict(config[RUN_SPEC_KEY])
        if simulate:
            from runners.simulated import SimulationLaw
            from runners.simulated import simulate as simulate_trial

            result = simulate_trial(run_spec, noise_key=identity.config_hash, seed=identity.seed, report=forward,
                                    trial_s=simulate_trial_s, law=SimulationLaw.from_mapping(simulate_law))
        else:
            from runners.train import train

            result = train(run_spec, report=forward, data_parallel=data_parallel)
    except Exception as exc:  # the runner raises only for a bad RunSpec; anything else is a bug, recorded
        if data_parallel is not None:  # a rank that reported and returned would leave the others waiting
            raise
        log.exception("trial %s raised", identity.trial_id)
        tail = traceback.format_exc(limit=3).strip().splitlines()[-1]
        result = RunResult(status=TrialStatus.FAILED, reason=f"{type(exc).__name__}: {exc} ({tail})"[:2000],
                           wall_s=time.perf_counter() - start_s, simulated=simulate,
                           workers=1 if data_parallel is None else data_parallel.world_size)
    report(final_metrics(result, objectives))
