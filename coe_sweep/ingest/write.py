"""Writing a validated import (`table.ImportPlan`) into MLflow as one sweep, through the tracking writer.

Layout: the same as a launched sweep (DESIGN.md "MLflow layout"): a parent run named after the sweep,
tagged `coe_sweep.imported=true`, with the import's record (source file and its sha256, mapping, FLOPs
per token rule, levels) as its spec.yaml; one finished child run per row with params
(`budget_label`, `budget_flops`, `model.<field>`, `seed`, `arm`, `import.line`), final metrics
(final_val_loss, params_active, params_total, tokens, train_flops, train_flops_per_token) and tags
(`coe_sweep.imported`, `coe_sweep.arm`; the writer adds `coe_sweep.seed` and `coe_sweep.trial_id`).

Nothing half-imported: the file was validated as a whole before this runs; a name already taken by
another sweep is refused before the first write; every child run is keyed by its config and seed,
so running the same import again (after an interruption, or while the store was down and writes
were journaled) completes it without duplicates.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from coe_sweep.ingest.table import ImportedRun, ImportPlan, ImportRefused
from coe_sweep.tracking import SweepTracker, TrackingStore
from coe_sweep.tracking.connection import redact_uri
from coe_sweep.tracking.names import TAG_ARM, TAG_IMPORTED, Scalar
from coe_sweep.trial import RunResult, TrialStatus


@dataclass(frozen=True)
class ImportOutcome:
    sweep_id: str
    sweep: str
    written: int  # runs written now
    already: int  # runs an earlier run of the same import had written
    pending: int  # writes journaled while the store was unreachable
    plan: ImportPlan


def _params(run: ImportedRun) -> dict[str, Scalar]:
    params: dict[str, Scalar] = {**run.model, "seed": run.seed, "import.line": run.line}
    if run.budget_label is not None:
        params["budget_label"] = run.budget_label
    if run.budget_flops is not None:
        params["budget_flops"] = run.budget_flops
    if run.arm is not None:
        params["arm"] = run.arm
    return params


def _result(run: ImportedRun) -> RunResult:
    return RunResult(status=TrialStatus.OK, tokens=int(round(run.tokens)), flops=float(run.flops),
                     train_flops_per_token=float(run.flops_per_token), params_total=int(round(run.params_total)),
                     params_active=int(round(run.params)), final_val_loss=float(run.loss), device="imported")


def write_import(plan: ImportPlan, uri: str, sweep: str, *, journal_dir: str | Path | None = None) -> ImportOutcome:
    """Write `plan` as sweep `sweep` into the MLflow store at `uri` (see the module docstring)."""
    name = sweep.strip() if isinstance(sweep, str) else ""
    if not name or len(name) > 200 or any(ord(ch) < 32 for ch in name):
        raise ImportRefused([f"--sweep={sweep!r} is invalid: expected a sweep name of 1-200 printable characters"])
    taken = [s for s in TrackingStore(uri).list_sweeps() if s.name == name and s.spec_hash != plan.spec_hash()]
    if taken:
        raise ImportRefused([f"--sweep={name!r}: {redact_uri(uri)} already has a sweep of this name (id {taken[0].id}) "
                             "that is not this import; expected a new name (an import of the same file with the same "
                             "mapping completes an earlier one instead)"])
    tracker = SweepTracker(uri, name, plan.spec_yaml(name), plan.spec_hash(), journal_dir=journal_dir,
                           parent_tags={TAG_IMPORTED: "true"})
    tracker.check_reachable()
    parent = tracker.start()
    done = tracker.finished_trials()
    written = 0
    for run in plan.runs:
        config = run.config_key()[:16]
        if (config, run.seed) in done:
            continue
        tags = {TAG_IMPORTED: "true"}
        if run.arm is not None:
            tags[TAG_ARM] = run.arm
        run_id = tracker.start_trial(config, _params(run), tags, seed=run.seed)
        tracker.log_result(run_id, _result(run))
        written += 1
    tracker.finish("FINISHED")
    return ImportOutcome(parent, name, written, len(plan.runs) - written, tracker.pending_writes, plan)
