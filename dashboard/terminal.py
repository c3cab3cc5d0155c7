"""The terminal side of the dashboard: `coe-sweep dashboard`, `coe-sweep pareto`, `coe-sweep optimal`.

`pareto` and `optimal` compute exactly what the API answers (dashboard.answers over the tracking
store's trials frame) and render it as rich tables, or print the same JSON as the API with --json.
Bad input (unknown sweep, objective, size) raises `BadInput`, which the CLI turns into exit 2.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from rich.console import Console
from rich.table import Table

from coe_sweep.console import make_console
from dashboard import answers
from dashboard.schemas import OptimalOut, ParetoOut
from dashboard.settings import Settings
from dashboard.units import format_bytes, parse_bytes

log = logging.getLogger(__name__)

# Short names the CLI accepts on top of the analysis names (issue #4: val_loss, peak_memory).
CLI_OBJECTIVE_ALIASES = {"val_loss": "final_val_loss", "peak_memory": "peak_memory_bytes",
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


def _frame(tracking_uri: str, sweep: str) -> tuple[Any, str]:
    from coe_sweep.tracking import SweepNotFound, TrackingStore

    store = TrackingStore(tracking_uri)
    try:
        summary = store.sweep(sweep)
        return store.trials_frame(summary.id), summary.id
    except SweepNotFound as exc:
        raise BadInput(str(exc)) from None


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
           family: str | None = None, console: Console | None = None) -> ParetoOut:
    """Print the Pareto set of a sweep's finished trials; returns the answer."""
    console = console or make_console()
    resolved = _objectives(objectives)
    frame, sweep_id = _frame(tracking_uri, sweep)
    filtered = frame
    if budget is not None or family is not None:
        from fastapi.exceptions import RequestValidationError

        from dashboard.filters import apply_filters

        try:
            filtered = apply_filters(frame, budget=budget, family=family)
        except RequestValidationError as exc:  # the shared filter's 422: name the flag instead
            raise BadInput("--" + exc.errors()[0]["msg"]) from None
    out = answers.pareto(frame, filtered, resolved, sweep_id=sweep_id, version=1,
                         filters={"budget": budget, "family": family}, include_dominated=False)
    if as_json:
        console.print_json(out.model_dump_json())
        return out
    columns = [c for c, _ in resolved]
    table = Table(title=f"Pareto set of {sweep}: " + ", ".join(f"{c} ({d})" for c, d in resolved))
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


def optimal(tracking_uri: str, sweep: str, flops: float, *, max_memory: str | None = None,
            x: str = "params_active", family: str | None = None, as_json: bool = False,
            console: Console | None = None) -> OptimalOut:
    """Print the predicted compute-optimal point at `flops` and the nearest sampled config."""
    console = console or make_console()
    if not (math.isfinite(flops) and flops > 0):
        raise BadInput(f"--flops={flops!r} is invalid: expected a finite number of training FLOPs > 0, e.g. 1e15")
    try:
        max_memory_bytes = None if max_memory is None else parse_bytes(max_memory)
    except ValueError as exc:
        raise BadInput(f"--{exc}") from None
    frame, sweep_id = _frame(tracking_uri, sweep)
    profiles = answers.profiles(frame, x, family)
    out = answers.optimal(frame, answers.fit(profiles), sweep_id=sweep_id, version=1, x=x, family=family,
                          flops=flops, max_memory_bytes=max_memory_bytes)
    if as_json:
        console.print_json(out.model_dump_json())
        return out
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
        for key, value in n.config.items():
            table.add_row(key, _fmt(value))
        table.add_row(n.x_name, _fmt(n.x))
        table.add_row("tokens to train", _fmt(n.trainable.get("horizon", {}).get("tokens")))
        table.add_row("sampled at budget", n.budget_label or "-")
        table.add_row("run", (n.run_id or "-")[:12])
        console.print(table)
    if out.message:
        console.print(f"[yellow]{out.message}[/yellow]")
    return out
