"""Rendering of a sweep plan (`coe_sweep.search.sweep_plan.build_plan`) as rich tables for the CLI."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from coe_sweep.units import format_bytes, format_count

_TERMS = ("attention_proj", "attention_scores", "routers", "routed_experts", "shared_experts", "lm_head")
_TERM_HEADS = ("attn", "scores", "router", "routed", "shared", "head")


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _config(config: dict[str, Any]) -> str:
    return " ".join(f"{k}={format_count(v) if isinstance(v, float) else v}" for k, v in config.items())


def render_plan(plan: dict[str, Any], console: Console, limit: int = 40) -> None:
    """One table per budget level, then the totals. `limit` rows per level (0: all), feasible first."""
    console.print(f"[bold]{plan['name']}[/]  spec {plan['spec_hash']}  algorithm {plan['algorithm']}  "
                  f"objectives {', '.join(plan['objectives'])}  grid {plan['grid_size']} point(s)"
                  + ("" if plan["exhaustive"] else "  (float ranges at their midpoint / sampled)")
                  + f"\narms {', '.join(plan['arms'])} (baseline {plan['baseline']}), {plan['seeds']} seed(s) per config")
    for level in plan["budgets"]:
        title = (f"budget {level['label']}: {level['n_feasible']} feasible, {level['n_rejected']} rejected"
                 + (f" ({', '.join(f'{n} {k}' for k, n in level['rejected_by'].items())})"
                    if level["rejected_by"] else "")
                 + f"; {level['trials']} trial(s)"
                 + (f" ({level['configs']} config(s) x {level['seeds']} seeds)" if level["seeds"] > 1 else "")
                 + f", {level['planned_flops']:.3g} FLOPs")
        table = Table(title=title, title_justify="left", show_lines=False)
        for head in ("config", "arm", "params", "active", *_TERM_HEADS, "train F/tok", "tokens", "steps",
                     "memory", "est. s", "feasible / reason"):
            table.add_column(head, overflow="fold")
        rows = sorted(level["candidates"], key=lambda c: not c["feasible"])
        shown = rows if limit <= 0 else rows[:limit]
        for c in shown:
            terms = c["forward_flops_per_token"]
            table.add_row(
                _config(c["config"]), c["arm"], format_count(c["params_total"]),
                format_count(c["params_active"]), *(format_count(terms.get(t, 0.0)) for t in _TERMS),
                format_count(c["train_flops_per_token"]), format_count(c["tokens"]), str(c["steps"]),
                format_bytes(c["memory_bytes"]), f"{c['estimated_trial_s']:.0f}",
                "[green]yes[/]" if c["feasible"] else f"[red]{c['reason']}[/]",
            )
        console.print(table)
        if len(shown) < len(rows):
            console.print(f"  ... {len(rows) - len(shown)} more candidate(s) (--limit 0 shows all)")
    model = plan["throughput_model"]
    if model["gpus_per_trial_spec"] == "auto" or model["workers_per_trial"] > 1:
        per_gpu = model["trials_per_gpu"]
        console.print(f"[bold]resources[/]: {model['workers_per_trial']} worker(s)/trial, "
                      f"{model['gpus_per_trial']:.3g} GPU(s)/trial"
                      + (f" (auto: {per_gpu} trial(s) per GPU by the memory estimate)" if per_gpu
                         else " (auto: no GPU here, so 0)" if model["gpus_per_trial_spec"] == "auto" else ""))
    console.print(f"[bold]total[/]: {plan['total_trials']} trial(s), {plan['total_flops']:.3g} training FLOPs, "
                  f"estimated wall time {_duration(plan['estimated_wall_s'])} on {plan['concurrent_slots']} "
                  f"slot(s) (model: {model['cpu_train_flops_per_s_per_cpu']:.3g} FLOPs/s per CPU x "
                  f"{model['cpus_per_trial']} CPU(s)/trial + ({model['step_overhead_s'] * 1000:g} + "
                  f"{model['step_overhead_per_layer_s'] * 1000:g}/layer + "
                  f"{model['step_overhead_per_layer_iteration_s'] * 1000:g}/layer/iteration) ms/step + "
                  f"{model['trial_overhead_s']} s/trial)")
