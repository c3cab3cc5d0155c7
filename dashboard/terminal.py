"""The terminal side of the dashboard: `coe-sweep dashboard`, `pareto`, `optimal` and `compare`.

`pareto`, `optimal` and `compare` compute exactly what the API answers (dashboard.answers over the tracking
store's trials frame) and render it as rich tables, or print the same JSON as the API with --json.
Bad input (unknown sweep, objective, size) raises `BadInput`, which the CLI turns into exit 2.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from rich.console import Console
from rich.table import Table

from coe_sweep.console import SIMULATED_LINE, make_console
from coe_sweep.trial import OBJECTIVES
from coe_sweep.units import format_bytes, parse_bytes
from dashboard import answers
from dashboard.schemas import CompareOut, OptimalOut, ParetoOut
from dashboard.settings import Settings

log = logging.getLogger(__name__)

# Short names the CLI accepts on top of the analysis names: the objective registry's, and two shorter ones.
CLI_OBJECTIVE_ALIASES = {name: o.metric for name, o in OBJECTIVES.items()} | {
    "memory": "peak_memory_bytes", "loss": "final_val_loss"}


class BadInput(ValueError):
    """A user-supplied value is invalid; the message names it and what is accepted."""


def serve(settings: Settings) -> None:
    """Run the dashboard with uvicorn on settings.host:settings.port (blocks until stopped). Every log handler,
    uvicorn's included, redacts the tracking URI's credentials."""
    import uvicorn

    from coe_sweep.tracking import TrackingStore
    from coe_sweep.tracking.connection import install_redaction, redact_uri
    from dashboard.app import create_app

    app = create_app(TrackingStore(settings.tracking_uri), settings)
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level="info")  # configures logging
    install_redaction(settings.tracking_uri)
    log.info("dashboard on http://%s:%d (tracking %s)", settings.host, settings.port, redact_uri(settings.tracking_uri))
    uvicorn.Server(config).run()


def _frame(tracking_uri: str, sweep: str, console: Console | None = None, as_json: bool = False) -> tuple[Any, str]:
    """The sweep's trials frame and id; prints the SIMULATED line first for a simulated sweep (not with --json)."""
    from coe_sweep.tracking import SweepNotFound, TrackingStore

    store = TrackingStore(tracking_uri)
    try:
        summary = store.sweep(sweep)
        frame = store.trials_frame(summary.id)
    except SweepNotFound as exc:
        raise BadInput(str(exc)) from None
    if console is not None and summary.simulated and not as_json:
        console.print(f"[bold]{SIMULATED_LINE}[/bold]", soft_wrap=True)
    return frame, summary.id


def print_flags(console: Console, flags: list[Any]) -> None:
    """Sanity flags of the fits (coe_sweep.analysis.sanity), blocking ones first."""
    for f in sorted(flags, key=lambda f: not f.blocking):
        style = "red" if f.blocking else "yellow"
        console.print(f"[{style}]{'FLAGGED' if f.blocking else 'warning'} ({f.fit}, {f.code}): {f.text}[/{style}]",
                      soft_wrap=True, highlight=False)


def _objectives(text: str) -> list[tuple[str, str]]:
    parts = []
    for part in text.split(","):
        name, sep, direction = part.strip().partition(":")
        parts.append(CLI_OBJECTIVE_ALIASES.get(name, name) + sep + direction)
    try:
        return answers.parse_objectives(",".join(parts))
    except ValueError as exc:
        raise BadInput(f"--objectives: {exc}") from None


def _fmt(value: Any, column: str = "") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if column.endswith("_bytes"):
        return format_bytes(float(value))
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.3e}"
    return str(value)


def pareto(tracking_uri: str, sweep: str, objectives: str, *, as_json: bool = False, budget: str | None = None,
           family: str | None = None, console: Console | None = None, pooled: bool = False) -> ParetoOut:
    """Print the Pareto set of a sweep's finished trials (one front per budget level unless pooled)."""
    console = console or make_console()
    resolved = _objectives(objectives)
    frame, sweep_id = _frame(tracking_uri, sweep, console, as_json)
    filtered = frame
    if budget is not None or family is not None:
        from fastapi.exceptions import RequestValidationError

        from dashboard.filters import apply_filters

        try:
            filtered = apply_filters(frame, budget=budget, family=family)
        except RequestValidationError as exc:  # the shared filter's 422: name the flag instead
            raise BadInput("--" + exc.errors()[0]["msg"]) from None
    out = answers.pareto(frame, filtered, resolved, sweep_id=sweep_id, version=1,
                         filters={"budget": budget, "family": family}, include_dominated=False, pooled=pooled)
    if as_json:
        console.print_json(out.model_dump_json())
        return out
    columns = [c for c, _ in resolved]
    table = Table(title=f"Pareto set of {sweep} ({'pooled over every budget' if pooled else 'one front per budget'}): "
                  + ", ".join(f"{c} ({d})" for c, d in resolved))
    for name in ("run", "budget", "family", "C", "K", "N", "layers", "d_model", *columns):
        table.add_column(name, justify="right", no_wrap=True)
    for p in out.front:
        cfg = p.config
        table.add_row((p.run_id or "")[:8], p.budget_label or "-", p.family or "-",
                      *(_fmt(cfg.get(k)) for k in ("iterations", "top_k", "n_experts", "n_layers", "d_model")),
                      *(_fmt(p.values.get(c), c) for c in columns))
    console.print(table)
    console.print(f"{len(out.front)} non-dominated of {out.n_considered} finished trial(s)"
                  + (f"; {out.n_excluded_nan} without values" if out.n_excluded_nan else ""))
    if out.message:
        console.print(f"[yellow]{out.message}[/yellow]")
    return out


def _ci(pair: list[float] | None) -> str:
    return "" if pair is None else f" [{_fmt(pair[0])}, {_fmt(pair[1])}]"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1%}"


def _print_methods(console: Console, out: OptimalOut, sweep: str) -> None:
    """Every method's optimum at the budget with its interval and reach, then its extrapolation audit."""
    if not out.methods:
        for warning in out.method_warnings:
            console.print(f"[yellow]{warning}[/yellow]")
        return
    table = Table(title=f"Compute-optimal allocation of {sweep} at {out.flops:.3g} training FLOPs, every method "
                        f"({int(out.ci * 100)}% CI; N = active params)")
    for name in ("method", "arm", "optimal N", "optimal tokens", "predicted loss", "reach"):
        table.add_column(name, justify="right")
    for m in out.methods:
        table.add_row(m.method, m.arm or "-", _fmt(m.n_opt) + _ci(m.n_opt_ci), _fmt(m.d_opt) + _ci(m.d_opt_ci),
                      _fmt(m.loss_opt) + _ci(m.loss_opt_ci), m.reach_text)
    console.print(table)
    audit = Table(title="Extrapolation audit: each method refitted without the largest budget, predicting it")
    for name in ("method", "held out", "N pred / observed", "N error", "loss pred / observed", "loss error",
                 "drop-one spread of N here"):
        audit.add_column(name, justify="right")
    for m in out.methods:
        a, sp = m.audit, m.spread
        spread = "-" if sp is None or sp.n_opt_range is None else f"[{_fmt(sp.n_opt_range[0])}, {_fmt(sp.n_opt_range[1])}]"
        if a is None:
            audit.add_row(m.method, "-", "-", "-", "-", "-", spread)
            continue
        audit.add_row(m.method, f"{a.held_out} ({a.reference})", f"{_fmt(a.n_opt_pred)} / {_fmt(a.n_opt_true)}",
                      _pct(a.n_opt_rel_error), f"{_fmt(a.loss_pred)} / {_fmt(a.loss_true)}",
                      "-" if a.loss_error is None else f"{a.loss_error:+.4f}", spread)
    console.print(audit)
    for m in out.methods:
        for warning in m.warnings:
            console.print(f"[yellow]warning ({m.method}): {warning}[/yellow]", soft_wrap=True)
    for warning in out.method_warnings:
        console.print(f"[yellow]warning: {warning}[/yellow]", soft_wrap=True)


def optimal(tracking_uri: str, sweep: str, flops: float, *, max_memory: str | None = None,
            x: str = "params_active", family: str | None = None, as_json: bool = False,
            console: Console | None = None) -> OptimalOut:
    """Print the predicted compute-optimal point at `flops` and the nearest sampled config."""
    console = console or make_console()
    if not (math.isfinite(flops) and flops > 0):
        raise BadInput(f"--flops={flops!r} is invalid: expected a finite number of training FLOPs > 0, e.g. 1e15")
    try:
        max_memory_bytes = None if max_memory is None else parse_bytes(max_memory, "max_memory")
    except ValueError as exc:
        raise BadInput(f"--{exc}") from None
    frame, sweep_id = _frame(tracking_uri, sweep, console, as_json)
    profiles = answers.profiles(frame, x, family)
    fit = answers.fit(profiles)
    active = profiles if x == "params_active" else answers.profiles(frame, "params_active", family)
    law_set = answers.laws(frame, family, active, fit if x == "params_active" else answers.fit(active))
    out = answers.optimal(frame, fit, sweep_id=sweep_id, version=1, x=x, family=family, flops=flops,
                          max_memory_bytes=max_memory_bytes, law_set=law_set, profiles=profiles)
    if as_json:
        console.print_json(out.model_dump_json())
        return out
    print_flags(console, out.flags)
    _print_methods(console, out, sweep)
    if out.prediction is not None:
        p = out.prediction
        table = Table(title=f"Predicted optimum of {sweep} at {flops:.3g} training FLOPs ({int(p.ci * 100)}% CI)")
        for name in ("quantity", "value", "interval"):
            table.add_column(name, justify="right")
        for name, value, ci in ((f"optimal {p.x_name}", p.x_opt, p.x_opt_ci), ("optimal tokens", p.tokens_opt, p.tokens_opt_ci),
                                ("predicted val loss", p.loss_opt, p.loss_opt_ci)):
            table.add_row(name, _fmt(value), "-" if ci is None else f"[{_fmt(ci[0])}, {_fmt(ci[1])}]")
        console.print(table)
        for warning in p.warnings:
            console.print(f"[yellow]warning: {warning}[/yellow]")
    if out.nearest is not None:
        n = out.nearest
        table = Table(title="Nearest trainable config sampled in the sweep"
                      + (f" (peak memory <= {format_bytes(max_memory_bytes)})" if max_memory_bytes else ""))
        table.add_column("field")
        table.add_column("value", justify="right")
        for key, field_value in n.config.items():
            table.add_row(key, _fmt(field_value))
        table.add_row(n.x_name, _fmt(n.x))
        table.add_row("tokens to train", _fmt(n.trainable.get("horizon", {}).get("tokens")))
        table.add_row("sampled at budget", n.budget_label or "-")
        table.add_row("run", (n.run_id or "-")[:12])
        console.print(table)
    if out.message:
        console.print(f"[yellow]{out.message}[/yellow]", soft_wrap=True)
    return out


def _interval(ci: list[float] | None, digits: int = 3) -> str:
    return "-" if ci is None else f"[{ci[0]:+.{digits}f}, {ci[1]:+.{digits}f}]"


def _describe(cell: Any) -> str:
    d = cell.describe
    parts = [f"{key}={d[name]}" for key, name in (("C", "iterations"), ("K", "top_k"), ("L", "n_layers"),
                                                  ("d", "d_model")) if d.get(name) is not None]
    return " ".join(parts) or cell.config


def _arm_rows(table: Table, label: str, arms: list[Any], baseline: str | None) -> None:
    for a in arms:
        s, d = a.summary, a.diff
        mean = f"{s.mean:.4f}" + ("" if s.ci is None else f" ± {(s.ci[1] - s.ci[0]) / 2:.4f}")
        table.add_row(label, a.arm, _describe(a.cell), str(s.n), mean,
                      "-" if d is None else f"{d.mean:+.4f}", "-" if d is None else _interval(d.ci),
                      "-" if d is None or d.p_value is None else f"{d.p_value:.3g}",
                      "baseline" if a.arm == baseline else (d.verdict if d else "-"),
                      "-" if d is None or d.detectable is None else f"{d.detectable:.4f}",
                      _fmt(a.peak_memory_ratio), _fmt(a.wall_s_ratio))


def _compare_table(title: str, groups: list[tuple[str, list[Any]]], baseline: str | None) -> Table:
    table = Table(title=title)
    for name in ("budget/cap", "arm", "config", "seeds", "mean loss ± CI", "diff vs base", "diff CI", "p",
                 "verdict", "MDD", "mem ratio", "wall ratio"):
        table.add_column(name, justify="right", no_wrap=name not in ("verdict", "config"))
    for label, arms in groups:
        _arm_rows(table, label, arms, baseline)
        table.add_section()
    return table


def compare(tracking_uri: str, sweep: str, *, baseline: str | None = None, as_json: bool = False,
            console: Console | None = None) -> CompareOut:
    """Print every arm against the baseline (per budget, equal memory, equal wall time, multipliers)."""
    console = console or make_console()
    frame, sweep_id = _frame(tracking_uri, sweep, console, as_json)
    spec_default = None
    if baseline is None:
        from coe_sweep.tracking import TrackingStore

        spec_default = answers.stored_spec_baseline(TrackingStore(tracking_uri), sweep_id)
    try:
        out = answers.compare(frame, sweep_id=sweep_id, version=1, baseline=baseline, spec_default=spec_default)
    except ValueError as exc:
        raise BadInput(f"--{exc}") from None
    if as_json:
        console.print_json(out.model_dump_json())
        return out
    pct = int(round(out.level * 100))
    console.print(f"{sweep}: every arm against [bold]{out.baseline}[/bold]; {out.selection}", soft_wrap=True)
    console.print(_compare_table(f"Equal training FLOPs ({pct}% CI over seeds; diff = arm - baseline, < 0 better)",
                                 [(b.budget_label, b.arms) for b in out.budgets], out.baseline))
    for a in (a for b in out.budgets for a in b.arms if a.diff is not None):
        console.print(f"  {a.cell.budget_label} {a.arm}: {a.diff.text}"  # type: ignore[union-attr]
                      + (f"; ~{a.diff.seeds_needed} seeds would detect {a.diff.mean:+.4f}"  # type: ignore[union-attr]
                         if a.diff.seeds_needed else ""), highlight=False, soft_wrap=True)  # type: ignore[union-attr]
    if out.multipliers:
        table = Table(title=f"Compute multipliers (baseline {out.baseline}: compute it needs to match the arm)")
        for name in ("arm", "at FLOPs", "baseline needs", "multiplier", f"{pct}% CI", "warnings"):
            table.add_column(name, justify="right")
        for m in out.multipliers:
            ci = "-" if m.ci is None else f"{_fmt(m.ci[0])}-{'unbounded' if m.ci[1] is None else _fmt(m.ci[1])}"
            table.add_row(m.arm, _fmt(m.flops), _fmt(m.baseline_flops), _fmt(m.multiplier), ci, "; ".join(m.warnings))
        console.print(table)
        for m in out.multipliers:
            console.print(f"  {m.text}", highlight=False, soft_wrap=True)
    for title, caps, fmt in (("Equal measured peak memory", out.equal_memory, format_bytes),
                             ("Equal measured wall time", out.equal_wall, lambda v: f"{v:.4g} s")):
        if caps:
            console.print(_compare_table(f"{title}: each arm's best config within the cap",
                                         [(f"<= {fmt(c.cap)}", c.arms) for c in caps], out.baseline))
    for note in [*out.notes, *([out.message] if out.message else [])]:
        console.print(f"[yellow]{note}[/yellow]", soft_wrap=True)
    return out
