"""Train one configuration: `train(run_spec, report=None) -> RunResult` (a function, not a script).

Order of work: validate the RunSpec and resolve the horizon (ValueError on bad input, nothing
trained), load the cached token windows (runners.data), then train a CoELM with AdamW on batches
drawn by the training seed, evaluating on the fixed validation windows at step 0, every
`eval_interval` steps and at the end. Training minimises CE + aux loss; the curves and finals hold
the CE alone so that train and val losses compare.

Never raises for what happens inside training: a NaN/inf loss returns status `diverged` (with the
step), an out-of-memory error `oom`, any other exception `failed` with the reason; curves and
counters up to that point are kept. The step itself (runners/step.py) reads nothing back: losses stay
on the device until a report or an evaluation reads them all at once (about five times per
`eval_interval`); a non-finite loss skips its update on the device, and the trial stops with
`diverged` at the first read after it, naming that step. Exceptions raised by the caller's `report` callback are the
caller's own and propagate unchanged.

Memory is measured on ONE representative step (the second: the first allocates the AdamW states)
with runners.memory; FLOPs spent = train_flops_per_token * tokens actually trained.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from coe_sweep.trial import RunResult, RunSpec, TrialStatus
from runners.data import TokenData, load_token_data
from runners.device import DeviceChoice, cpu_threads, keep_freed_memory, resolve_device
from runners.distributed import DataParallel
from runners.plan import HorizonPlan, plan_horizon, validate_run_spec
from runners.routing import summarise_routing
from runners.step import EAGER_STEPS, TrainStep, compile_pays

log = logging.getLogger(__name__)

Report = Callable[[dict[str, Any]], None]
MEASURED_STEP = 2  # the memory-measured step (1-based); the first step allocates the optimizer states


class _ReportError(Exception):
    """Wraps an exception raised by the caller's report callback so that it is re-raised as is."""


class _Diverged(Exception):
    pass


@dataclass
class _Trial:
    """Everything one training run needs, built once; `result` fills in as it goes."""

    spec: RunSpec
    horizon: HorizonPlan
    device: DeviceChoice
    data: TokenData
    result: RunResult
    report: Report | None
    started_s: float = field(default_factory=time.perf_counter)
    step_time_s: float = 0.0  # time in timed training steps (not evals, not the measured step)
    timed_steps: int = 0
    pending: list[tuple[int, torch.Tensor]] = field(default_factory=list)  # (step, [CE, total]) not yet read
    compile_started_s: float | None = None  # set between the compile decision and the compiling step
    dp: DataParallel | None = None  # a data-parallel trial's rank (runners/distributed.py); None: one worker

    def read_losses(self, strict: bool = True) -> None:
        """Read the pending step losses in one transfer (the only per-step sync) into the curve and
        `steps`; at the first non-finite loss stop there, raising _Diverged when `strict`. On CUDA the
        wait for the device lands here, so it counts as step time."""
        if not self.pending:
            return
        t0 = time.perf_counter()
        stacked = torch.stack([losses for _, losses in self.pending])
        values = (stacked if self.dp is None else self.dp.mean(stacked)).tolist()
        self.step_time_s += time.perf_counter() - t0
        steps = [step for step, _ in self.pending]
        self.pending.clear()
        for step, (ce, total) in zip(steps, values, strict=True):
            if not (math.isfinite(ce) and math.isfinite(total)):
                if strict:
                    raise _Diverged(f"non-finite loss ({total}) at step {step}")
                return
            self.result.steps = step
            self.result.train_curve.append((step, ce))

    def emit(self, metrics: dict[str, Any]) -> None:
        if self.report is None:
            return
        try:
            self.report(metrics)
        except Exception as e:  # the caller's, not ours
            raise _ReportError() from e


def train(run_spec: RunSpec, report: Report | None = None, data_parallel: DataParallel | None = None) -> RunResult:
    """Train `run_spec` to its horizon and report what happened (see the module docstring). With
    `data_parallel`, this is one rank of a data-parallel trial (runners/distributed.py): every rank returns
    the same RunResult (losses averaged over ranks, rank 0's evaluations, memory of every rank)."""
    validate_run_spec(run_spec)
    if data_parallel is not None:
        data_parallel.shard_rows(run_spec.train.batch_size)  # ValueError before anything is loaded
    horizon = plan_horizon(run_spec)
    device = resolve_device(run_spec.train)
    data = load_token_data(run_spec.data, run_spec.train.seq_len)
    if data.vocab_size != run_spec.model.vocab_size:  # validate_run_spec checked the name; belt and braces
        raise ValueError(f"ModelConfig.vocab_size={run_spec.model.vocab_size} is invalid: the tokenizer has "
                         f"{data.vocab_size} ids; expected vocab_size={data.vocab_size}")
    trial = _Trial(run_spec, horizon, device, data, _initial_result(run_spec, horizon, device), report,
                   dp=data_parallel)
    if device.device.type == "cpu":
        keep_freed_memory()
    log.info("training %s on %s for %d steps (%s horizon, %d tokens)", run_spec.model.family,
             device.name, horizon.steps, horizon.source, horizon.tokens)
    with cpu_threads(device.threads):
        try:
            _fit(trial)
        except _ReportError as e:
            assert e.__cause__ is not None
            raise e.__cause__ from None
        except _Diverged as e:
            trial.result.status, trial.result.reason = TrialStatus.DIVERGED, str(e)
        except Exception as e:  # noqa: BLE001 - a trial reports its failure, it never crashes the caller
            if data_parallel is not None:  # one rank's own failure: the others wait in a collective, so the
                raise  # whole worker group must end (coe_sweep.sweep.data_parallel records the failure)
            trial.result.status, trial.result.reason = classify_failure(e)
            log.warning("trial %s: %s", trial.result.status, trial.result.reason,
                        exc_info=trial.result.status == TrialStatus.FAILED)
    _finish(trial)
    return trial.result


def classify_failure(exc: BaseException) -> tuple[TrialStatus, str]:
    """('oom', reason) for out-of-memory errors (torch, CUDA or host), else ('failed', reason)."""
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, (MemoryError, torch.OutOfMemoryError)) or (
            isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()):
        return TrialStatus.OOM, text
    return TrialStatus.FAILED, text


def _initial_result(spec: RunSpec, horizon: HorizonPlan, device: DeviceChoice) -> RunResult:
    from coe_sweep.accounting import memory_estimate, param_counts

    counts = param_counts(spec.model)
    estimate = memory_estimate(spec.model, spec.train.batch_size, spec.train.seq_len, dtype=device.precision,
                               device=device.device.type)
    return RunResult(status=TrialStatus.OK, train_flops_per_token=horizon.train_flops_per_token,
                     params_total=counts.total, params_active=counts.active,
                     estimated_memory_bytes=int(estimate.total), device=device.name)


# ---------------------------------------------------------------- the loop

def _fit(trial: _Trial) -> None:
    from coe_sweep.model.lm import CoELM

    spec, dev = trial.spec, trial.device
    torch.manual_seed(spec.train.seed)
    model = CoELM(spec.model).to(dev.device)
    stepper = TrainStep(model if trial.dp is None else trial.dp.wrap(model, dev.device), spec.train,
                        trial.horizon.steps, dev)
    rows = slice(None) if trial.dp is None else trial.dp.shard_rows(spec.train.batch_size)
    batches = (b[rows] for b in _train_batches(trial.data.train_ids, spec.train.batch_size, spec.train.seed,
                                               dev.device))
    _evaluate_and_report(trial, model, step=0, train_loss=None)
    try:
        for step in range(1, trial.horizon.steps + 1):
            trial.pending.append((step, _run_step(trial, stepper, step, next(batches))))
            if step % spec.train.eval_interval == 0 or step == trial.horizon.steps:
                trial.read_losses()
                _evaluate_and_report(trial, model, step, trial.result.train_curve[-1][1])
            elif step % _report_every(spec.train.eval_interval) == 0:
                trial.read_losses()
                trial.emit({"step": step, "tokens": step * trial.horizon.tokens_per_step,
                            "train_loss": trial.result.train_curve[-1][1],
                            "elapsed_s": time.perf_counter() - trial.started_s})
    except BaseException:
        with contextlib.suppress(Exception):  # keep the curve up to the failure; the failure itself wins
            trial.read_losses(strict=False)
        raise
    trial.result.routing = _routing_summary(model, trial)


def _run_step(trial: _Trial, stepper: TrainStep, step: int, batch: torch.Tensor) -> torch.Tensor:
    """One training step. The memory-measured step goes through runners.memory; step EAGER_STEPS is
    timed to its end and decides compilation (runners/step.py); the first compiled step (which
    compiles) is not timed; the others are."""
    if step == min(MEASURED_STEP, trial.horizon.steps):
        measured = _measured_step(trial, stepper, batch)
        if measured is not None:
            return measured
    if step == EAGER_STEPS and step < trial.horizon.steps and trial.spec.train.compile != "off":
        losses, step_s = stepper.timed_eager_step_s(batch)
        trial.step_time_s += step_s
        trial.timed_steps += 1
        steps_left = trial.horizon.steps - step
        pays = compile_pays(trial.spec.train.compile, steps_left, step_s, trial.device.device.type)
        if trial.dp is not None:  # rank 0 decides for all: the ranks' timings differ
            pays = trial.dp.broadcast_float(float(pays), trial.device.device) > 0.5
        if pays:
            log.info("compiling the step (%s, %d steps left at %.3f s)", trial.spec.train.compile, steps_left, step_s)
            trial.compile_started_s = time.perf_counter() if stepper.compile() else None
        return losses
    t0 = time.perf_counter()
    out = stepper.run(batch)
    if trial.compile_started_s is not None:  # the compiling step
        log.info("compiled in %.1f s", time.perf_counter() - trial.compile_started_s)
        trial.compile_started_s = None
        return out
    trial.step_time_s += time.perf_counter() - t0
    trial.timed_steps += 1
    return out


def _measured_step(trial: _Trial, stepper: TrainStep, batch: torch.Tensor) -> torch.Tensor | None:
    """Run the step under runners.memory; None when the measurement itself broke before the update.

    A tracker that cannot follow some tensor kind must not fail the trial: the memory fields stay
    None (with a warning) and the caller re-runs the step unmeasured. Out-of-memory errors, and
    failures after the optimizer step, propagate as usual.
    """
    from runners.memory import measure_step_memory

    optimizer = stepper.optimizer
    steps_before = sum(int(s.get("step", 0)) for s in optimizer.state.values())
    try:
        measured = measure_step_memory(stepper.model, lambda: stepper.run(batch), optimizer, extra_tensors=[batch])
    except Exception as e:  # noqa: BLE001
        updated = sum(int(s.get("step", 0)) for s in optimizer.state.values()) != steps_before
        if classify_failure(e)[0] == "oom" or updated:
            raise
        log.warning("memory measurement failed (%s: %s); the step is re-run unmeasured", type(e).__name__, e)
        return None
    trial.result.peak_memory_bytes = measured.peak_bytes
    trial.result.allocated_after_step_bytes = measured.allocated_after_step_bytes
    return measured.step_output


def _train_batches(windows: np.ndarray, batch_size: int, seed: int, device: torch.device) -> Iterator[torch.Tensor]:
    """Endless (B, T+1) batches: each epoch visits the windows in an order drawn by the training seed.
    On CUDA a batch is copied from pinned memory without blocking: a copy from pageable memory would
    make the host wait for the device every step."""
    rng = np.random.default_rng(seed)
    pin = device.type == "cuda"
    n = len(windows)
    order, pos = rng.permutation(n), 0
    while True:
        if pos + batch_size > n:
            order = np.concatenate([order[pos:], rng.permutation(n)])
            pos = 0
        idx = np.sort(order[pos:pos + batch_size])  # sorted: sequential reads of the memmap
        pos += batch_size
        batch = torch.from_numpy(np.asarray(windows[idx], dtype=np.int64))
        yield batch.pin_memory().to(device, non_blocking=True) if pin else batch.to(device)


# ---------------------------------------------------------------- evaluation and finish

@torch.no_grad()
def evaluate(model: torch.nn.Module, val_windows: np.ndarray, batch_size: int, device: DeviceChoice,
             max_batches: int | None = None) -> float:
    """Mean token cross-entropy over the validation windows (all equal length, so a row mean)."""
    was_training = model.training
    model.eval()
    total, rows = 0.0, 0
    n = len(val_windows)
    for b, start in enumerate(range(0, n, batch_size)):
        if max_batches is not None and b >= max_batches:
            break
        batch = torch.from_numpy(np.asarray(val_windows[start:start + batch_size], dtype=np.int64)).to(device.device)
        with device.autocast():
            out = model(batch[:, :-1], targets_BT=batch[:, 1:])
        total += out.loss.item() * len(batch)
        rows += len(batch)
    model.train(was_training)
    return total / rows


def _evaluate_and_report(trial: _Trial, model: torch.nn.Module, step: int, train_loss: float | None) -> None:
    tc = trial.spec.train
    dp = trial.dp
    if dp is None:
        val = evaluate(model, trial.data.val_ids, tc.batch_size, trial.device, tc.eval_batches)
    else:  # rank 0 evaluates the unwrapped model (no collectives inside); every rank gets its value
        val = evaluate(model, trial.data.val_ids, tc.batch_size, trial.device, tc.eval_batches) \
            if dp.is_main else math.nan
        val = dp.broadcast_float(val, trial.device.device)
    trial.result.val_curve.append((step, val))
    trial.emit({"step": step, "tokens": step * trial.horizon.tokens_per_step, "train_loss": train_loss,
                "val_loss": val, "elapsed_s": time.perf_counter() - trial.started_s})
    if not math.isfinite(val):
        raise _Diverged(f"non-finite validation loss ({val}) at step {step}")


@torch.no_grad()
def _routing_summary(model: torch.nn.Module, trial: _Trial) -> dict[str, float]:
    """Routing statistics from one forward of the first validation batch (rank 0's, in a data-parallel trial)."""
    if trial.dp is not None and not trial.dp.is_main:
        return {}
    batch = torch.from_numpy(np.asarray(trial.data.val_ids[:trial.spec.train.batch_size], dtype=np.int64))
    model.eval()
    with trial.device.autocast():
        out = model(batch[:, :-1].to(trial.device.device), return_stats=True)
    return summarise_routing(out.stats)


def _report_every(eval_interval: int) -> int:
    """Train-loss-only reports come about five times per eval interval."""
    return max(1, eval_interval // 5)


def _finish(trial: _Trial) -> None:
    r, h = trial.result, trial.horizon
    if trial.dp is not None:
        _gather_worker_memory(trial)
    r.wall_s = time.perf_counter() - trial.started_s
    r.tokens = r.steps * h.tokens_per_step
    r.flops = h.train_flops_per_token * r.tokens
    if r.train_curve:
        r.final_train_loss = r.train_curve[-1][1]
    if r.val_curve and r.status == TrialStatus.OK:
        r.final_val_loss = r.val_curve[-1][1]
    if trial.timed_steps:
        r.tokens_per_s = trial.timed_steps * h.tokens_per_step / trial.step_time_s
    if r.tokens_per_s is not None and trial.device.peak_flops:
        r.mfu = h.train_flops_per_token * r.tokens_per_s / trial.device.peak_flops
    if trial.device.device.type == "cuda" and r.status == TrialStatus.OOM:
        torch.cuda.empty_cache()


def _gather_worker_memory(trial: _Trial) -> None:
    """Every rank's measured peak (-1: not measured) into the result: the max and the per-worker list."""
    assert trial.dp is not None
    r = trial.result
    peaks = trial.dp.gather_int(-1 if r.peak_memory_bytes is None else r.peak_memory_bytes, trial.device.device)
    r.workers = trial.dp.world_size
    r.peak_memory_per_worker_bytes = peaks
    r.peak_memory_bytes = max(peaks) if min(peaks) >= 0 else None
