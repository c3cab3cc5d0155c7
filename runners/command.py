"""`coe-sweep train`: flags or a RunSpec YAML -> RunSpec -> plan -> train with a progress bar -> result.

`coe_sweep/cli.py` holds only the two hooks (`add_train_arguments` for the parser block and
`run_train_command` for `_cmd_train`); this module keeps torch out of its imports so that
`coe-sweep --help` stays fast. Precedence of values: flag > YAML (`--config`) > dataclass default;
a horizon flag (`--steps`/`--tokens`/`--flops`) replaces the YAML horizon. When neither names the
model's `vocab_size` it follows the tokenizer (byte: 258, bpe:N: N), and `max_seq_len` grows to
`seq_len`. Exit status: 0 ok, 1 the trial ended diverged/oom/failed, 2 bad input (nothing trained).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import typing
from dataclasses import fields
from pathlib import Path
from typing import Any

from coe_sweep.fields import field_docs
from coe_sweep.model.config import ModelConfig
from coe_sweep.trial import (
    DataConfig,
    Horizon,
    RunResult,
    RunSpec,
    TrainConfig,
    TrialStatus,
    tokenizer_vocab_size,
)
from coe_sweep.units import format_bytes

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
SECTIONS: dict[str, type] = {"model": ModelConfig, "train": TrainConfig, "data": DataConfig, "horizon": Horizon}

# Model flags: (flag, field, type, help). Train and data flags are generated from TrainConfig / DataConfig
# (`--<field>` with dashes, help from the field's description; data.seed is --data-seed).
_MODEL_FLAGS: list[tuple[str, str, Any, str]] = [
    ("--d-model", "d_model", int, "model width D"),
    ("--n-layers", "n_layers", int, "transformer blocks"),
    ("--n-heads", "n_heads", int, "attention heads (or --head-dim)"),
    ("--head-dim", "head_dim", int, "width of one attention head: heads = d_model / head_dim"),
    ("--n-kv-heads", "n_kv_heads", int, "key/value heads (GQA)"),
    ("--d-expert", "d_expert", int, "hidden width of one SwiGLU expert"),
    ("--n-experts", "n_experts", int, "routed experts N"),
    ("--n-shared", "n_shared", int, "shared experts"),
    ("--top-k", "top_k", int, "experts per token per iteration K"),
    ("--iterations", "iterations", int, "chain iterations C (1 = MoE)"),
    ("--router-mode", "router_mode", str, "independent | shared"),
    ("--aux-loss-alpha", "aux_loss_alpha", float, "balance-loss weight"),
    ("--dispatch", "dispatch", str, "grouped | loop"),
    ("--vocab-size", "vocab_size", int, "default: the tokenizer's"),
    ("--max-seq-len", "max_seq_len", int, "default: max(256, seq_len)"),
]


def _section_flags() -> list[tuple[str, str, str, Any, str]]:
    """(flag, section, field, type, help) of every TrainConfig and DataConfig field."""
    out: list[tuple[str, str, str, Any, str]] = []
    for section, cls in (("train", TrainConfig), ("data", DataConfig)):
        for name, (f, hint) in field_docs(cls).items():
            args = typing.get_args(hint)
            base = next(a for a in args if a is not type(None)) if type(None) in args else hint
            kind = base if base in (int, float) else str
            choices = typing.get_args(base) if typing.get_origin(base) is typing.Literal else ()
            flag = "--data-seed" if (section, name) == ("data", "seed") else "--" + name.replace("_", "-")
            help_text = str(f.metadata.get("doc", "")) + (f" ({' | '.join(choices)})" if choices else "")
            out.append((flag, section, name, kind, help_text.replace("%", "%%")))
    return out


_FLAGS = [(flag, "model", name, kind, help_text) for flag, name, kind, help_text in _MODEL_FLAGS] + _section_flags()
_BOOL_FLAGS = [("--dense", "dense"), ("--outer-residual", "outer_residual"),
               ("--inner-residual", "inner_residual"), ("--renormalize-topk", "renormalize_topk"),
               ("--tie-embeddings", "tie_embeddings")]


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="RunSpec YAML with sections model:, train:, data:, horizon:")
    horizon = p.add_mutually_exclusive_group()
    horizon.add_argument("--steps", type=int, help="train this many steps (wins over tokens/flops)")
    horizon.add_argument("--tokens", type=int, help="token budget: steps = ceil(tokens / (batch*seq_len))")
    horizon.add_argument("--flops", type=float, help="FLOPs budget: tokens = flops / train FLOPs per token")
    groups = {s: p.add_argument_group(f"{s} (override --config)") for s in ("model", "train", "data")}
    for flag, section, _field, typ, help_text in _FLAGS:
        groups[section].add_argument(flag, type=typ, default=None, help=help_text)
    for flag, _field in _BOOL_FLAGS:
        groups["model"].add_argument(flag, action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--json", action="store_true", help="print the RunResult as JSON on stdout")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_train_command(args: argparse.Namespace) -> int:
    from coe_sweep.console import make_console

    console = make_console(stderr=args.json, highlight=False)
    try:
        spec = run_spec_from_args(args)
        _print_plan(console, spec)
    except (ValueError, TypeError) as e:
        make_console(stderr=True).print(f"[red]error:[/red] {e}", markup=True, highlight=False)
        return EXIT_BAD_INPUT
    try:
        result = _train_with_progress(console, spec, show=not args.no_progress)
    except (ValueError, TypeError) as e:  # bad data source, bad device: raised before training
        make_console(stderr=True).print(f"[red]error:[/red] {e}", markup=True, highlight=False)
        return EXIT_BAD_INPUT
    if args.json:
        print(json.dumps(_json_safe(result.to_dict()), indent=1))
    else:
        _print_result(console, result)
    return EXIT_OK if result.status == TrialStatus.OK else EXIT_FAILED


# ---------------------------------------------------------------- RunSpec from YAML and flags

def load_run_spec_yaml(path: Path) -> dict[str, dict[str, Any]]:
    """Sections of a RunSpec YAML; unknown sections or fields are a ValueError that names them. Read with the
    spec's bounded YAML reader (nesting, aliases, number length: coe_sweep.spec.yaml_lines)."""
    from coe_sweep.spec.yaml_lines import YamlLocationError, load_located

    try:
        raw = load_located(Path(path).read_text(encoding="utf-8")).data
    except FileNotFoundError:
        raise ValueError(f"--config {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"--config {path}: cannot be read as UTF-8 text ({e})") from None
    except YamlLocationError as e:
        raise ValueError(f"--config {path}:{e.line}: found {e.message}; expected {e.expected}") from None
    raw = raw or {}
    if not isinstance(raw, dict):
        raise ValueError(f"--config {path}: expected a mapping with sections {list(SECTIONS)}")
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise ValueError(f"--config {path}: unknown section(s) {unknown}; accepted: {list(SECTIONS)}")
    out: dict[str, dict[str, Any]] = {}
    for section, body in raw.items():
        body = body or {}
        if not isinstance(body, dict):
            raise ValueError(f"--config {path}: {section}: expected a mapping, found {body!r}")
        accepted = [f.name for f in fields(SECTIONS[section])]
        bad = sorted(set(body) - set(accepted))
        if bad:
            raise ValueError(f"--config {path}: unknown {section} field(s) {bad}; accepted: {accepted}")
        out[section] = dict(body)
    return out


def run_spec_from_args(args: argparse.Namespace) -> RunSpec:
    sections = load_run_spec_yaml(args.config) if args.config else {}
    for section in ("model", "train", "data"):
        sections.setdefault(section, {})
    for flag, section, name, _typ, _help in _FLAGS:
        value = getattr(args, flag.lstrip("-").replace("-", "_"))
        if value is not None:
            sections[section][name] = value
    for flag, name in _BOOL_FLAGS:
        value = getattr(args, flag.lstrip("-").replace("-", "_"))
        if value is not None:
            sections["model"][name] = value
    cli_horizon = {k: getattr(args, k) for k in ("steps", "tokens", "flops") if getattr(args, k) is not None}
    if cli_horizon:
        sections["horizon"] = cli_horizon
    train_cfg = TrainConfig(**sections["train"])
    data_cfg = DataConfig(**sections["data"])
    model = sections["model"]
    model.setdefault("vocab_size", tokenizer_vocab_size(data_cfg.tokenizer))
    model.setdefault("max_seq_len", max(ModelConfig.max_seq_len, train_cfg.seq_len))
    horizon = Horizon(**sections["horizon"]) if "horizon" in sections else Horizon(steps=100)
    return RunSpec(model=ModelConfig.from_dict(model), train=train_cfg, data=data_cfg, horizon=horizon)


# ---------------------------------------------------------------- rendering

def _print_plan(console: Any, spec: RunSpec) -> None:
    """The single-config plan: params, FLOPs/token by term, horizon, memory estimate (raises on bad spec)."""
    from rich.table import Table

    from coe_sweep.accounting import forward_flops_per_token, memory_estimate, param_counts
    from runners.device import resolve_device
    from runners.plan import plan_horizon, validate_run_spec

    validate_run_spec(spec)
    m, tc = spec.model, spec.train
    counts = param_counts(m)
    horizon = plan_horizon(spec)
    terms = forward_flops_per_token(m, tc.seq_len).as_dict()
    device = resolve_device(tc)
    precision = device.precision
    memory = memory_estimate(m, tc.batch_size, tc.seq_len, dtype=precision, device=device.device.type)
    table = Table(title=f"plan: {m.family} C={m.iterations} K={m.top_k} N={m.n_experts} "
                        f"D={m.d_model} L={m.n_layers} on {spec.data.source}, {device.name}", show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("params total / active", f"{counts.total:,} / {counts.active:,}")
    table.add_row("non-embedding total / active", f"{counts.non_embedding:,} / {counts.active_non_embedding:,}")
    for name, value in terms.items():
        table.add_row(f"forward FLOPs/token: {name}", f"{value:,.0f}")
    table.add_row("train FLOPs/token (3x forward)", f"{horizon.train_flops_per_token:,.0f}")
    table.add_row(f"horizon (by {horizon.source})", f"{horizon.steps:,} steps x {horizon.tokens_per_step:,} tokens")
    table.add_row("tokens / train FLOPs", f"{horizon.tokens:,} / {horizon.flops:.3e}")
    for name, value in memory.as_dict().items():
        table.add_row(f"estimated memory ({precision}): {name}", format_bytes(value))
    console.print(table)


def _train_with_progress(console: Any, spec: RunSpec, show: bool) -> RunResult:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from runners.plan import plan_horizon
    from runners.train import train

    total = plan_horizon(spec).steps
    progress = Progress(TextColumn("train"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                        TimeElapsedColumn(), console=console, disable=not show)
    state: dict[str, Any] = {"val": None}

    def report(m: dict[str, Any]) -> None:
        if m.get("val_loss") is not None:
            state["val"] = m["val_loss"]
        train_loss = "-" if m.get("train_loss") is None else f"{m['train_loss']:.4f}"
        val = "-" if state["val"] is None else f"{state['val']:.4f}"
        rate = m["tokens"] / m["elapsed_s"] if m["elapsed_s"] > 0 else 0.0
        progress.update(task, completed=m["step"],
                        info=f"loss {train_loss}  val {val}  {rate:,.0f} tok/s")

    with progress:
        task = progress.add_task("train", total=total, info="")
        return train(spec, report=report)


def _print_result(console: Any, r: RunResult) -> None:
    from rich.table import Table

    table = Table(title=f"result: {r.status.value}" + (f" ({r.reason})" if r.reason else ""), show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    rows = [("steps / tokens", f"{r.steps:,} / {r.tokens:,}"), ("train FLOPs spent", f"{r.flops:.3e}"),
            ("final train loss", _num(r.final_train_loss)), ("final val loss", _num(r.final_val_loss)),
            ("val loss at start", _num(r.val_curve[0][1] if r.val_curve else None)),
            ("tokens/s", _num(r.tokens_per_s, "{:,.0f}")), ("wall", f"{r.wall_s:.1f} s"),
            ("peak memory (measured)", format_bytes(r.peak_memory_bytes)),
            ("allocated after step (paper)", format_bytes(r.allocated_after_step_bytes)),
            ("estimated memory", format_bytes(r.estimated_memory_bytes)),
            ("MFU", _num(r.mfu, "{:.1%}")), ("device", r.device)]
    for key in ("max_load", "mean_entropy", "mean_overlap_next", "dead_experts"):
        if key in r.routing:
            rows.append((f"routing: {key}", _num(r.routing[key])))
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)


def _num(value: float | None, fmt: str = "{:.4f}") -> str:
    return "-" if value is None else fmt.format(value)


def _json_safe(value: Any) -> Any:
    """NaN/inf -> None so the output is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


if __name__ == "__main__":  # python -m runners.command ... (same as `coe-sweep train ...`)
    parser = argparse.ArgumentParser(prog="coe-sweep train")
    add_train_arguments(parser)
    sys.exit(run_train_command(parser.parse_args()))
