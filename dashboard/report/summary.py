"""The one-page summary of a sweep's answers, as blocks rendered to Markdown and to HTML (one content, two
renderers): numbers with their intervals, verdicts in words, every sanity flag, and the figures."""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

from coe_sweep.console import SIMULATED_LINE
from dashboard.report.collect import SweepAnswers
from dashboard.schemas import FitFlagOut


@dataclass(frozen=True)
class Block:
    kind: str  # h1 | h2 | p | ul | table | img
    text: str = ""
    items: tuple[str, ...] = ()
    rows: tuple[tuple[str, ...], ...] = ()  # table: header first


def num(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}" if 1e-3 <= abs(value) < 1e5 or value == 0 else f"{value:.3e}"


def ci(pair: list[float] | tuple[float, float] | None) -> str:
    return "" if pair is None else f" [{num(pair[0])}, {num(pair[1])}]"


def flag_line(f: FitFlagOut) -> str:
    return f"{'FLAGGED' if f.blocking else 'warning'} ({f.fit}{', level ' + f.level if f.level else ''}): {f.text}"


def _head(r: SweepAnswers) -> list[Block]:
    s = r.sweep
    counts = ", ".join(f"{k} {v}" for k, v in sorted(dict(s.counts).items()))
    blocks = [Block("h1", f"Sweep report: {s.name}")]
    if s.simulated:
        blocks.append(Block("p", f"**{SIMULATED_LINE}**"))
    blocks.append(Block("p", f"Sweep `{s.id}`, status {s.status}; {s.n_trials} trial(s): {counts or 'none'}. "
                             "Intervals are 95%. N = active parameters, D = training tokens, loss = final validation "
                             "loss in nats/token."))
    blocks.append(Block("h2", "Flags"))
    blocks.append(Block("ul", items=tuple(flag_line(f) for f in sorted(r.flags, key=lambda f: not f.blocking)))
                  if r.flags else Block("p", "No fit is flagged."))
    return blocks


def _levels(r: SweepAnswers, figures: dict[str, list[Any]]) -> list[Block]:
    blocks = [Block("h2", "IsoFLOP profiles per budget level")]
    if r.frontier.message:
        blocks.append(Block("p", r.frontier.message))
    rows = [("level (FLOPs)", "trials", "best measured loss", "fitted N*", "fitted loss*", "flags")]
    for b in r.frontier.budgets:
        fit = b.fit
        mark = " (flagged: not an answer)" if b.flagged else ""
        rows.append((b.budget_label, str(b.n_points), num(b.best_loss),
                     num(fit.x_opt) + ci(fit.x_opt_ci) + mark if fit and fit.x_opt is not None else "-",
                     num(fit.loss_opt) + ci(fit.loss_opt_ci) + mark if fit and fit.loss_opt is not None else "-",
                     "; ".join(f.code for f in b.flags) or "none"))
    if len(rows) > 1:
        blocks.append(Block("table", rows=tuple(rows)))
    blocks += [Block("img", p.name) for p in figures.get("isoflop", []) if p.suffix == ".png"]
    return blocks


def _laws(r: SweepAnswers, figures: dict[str, list[Any]]) -> list[Block]:
    sc = r.scaling
    blocks = [Block("h2", "Compute-optimal allocation")]
    if sc.message:
        blocks.append(Block("p", sc.message))
    laws = [f"{law.quantity}: exponent {num(law.exponent)}{ci(law.exponent_ci)}" for law in sc.laws]
    if laws:
        blocks.append(Block("p", "Approach 2 laws against the budget C: " + "; ".join(laws) + "."))
    methods = [m for m in sc.methods if not m.message]
    if methods:
        rows = [("method", "fitter / form", "N* exponent", "leave-future-out error")]
        for m in methods:
            a = m.audit
            audit = "-" if a is None or a.n_opt_rel_error is None else (
                f"N {a.n_opt_rel_error:+.1%}, loss {a.loss_error:+.4f} (held out {a.held_out})" if a.loss_error is not None
                else f"N {a.n_opt_rel_error:+.1%} (held out {a.held_out})")
            rows.append((m.method, " / ".join(x for x in (m.fitter, m.form) if x) or "-",
                         num(m.n_exponent) + ci(m.n_exponent_ci), audit))
        blocks.append(Block("table", rows=tuple(rows)))
    blocks += [Block("p", f"{m.method}: no fit: {m.message}") for m in sc.methods if m.message]
    op = r.optimal
    if op is not None and op.methods:
        table: list[tuple[str, ...]] = [("method", "arm", "optimal N", "optimal D (tokens)", "predicted loss", "reach",
                                          "verdict")]
        for p in op.methods:
            table.append((p.method, p.arm or "-", num(p.n_opt) + ci(p.n_opt_ci), num(p.d_opt) + ci(p.d_opt_ci),
                          num(p.loss_opt) + ci(p.loss_opt_ci), p.reach_text,
                          "flagged: not an answer" if p.flagged else "usable"))
        blocks.append(Block("p", f"Predicted optimum at {op.flops:.3g} training FLOPs (10x the largest trial):"))
        blocks.append(Block("table", rows=tuple(table)))
    blocks += [Block("img", p.name) for p in figures.get("optimum", []) if p.suffix == ".png"]
    return blocks


def _pareto(r: SweepAnswers, figures: dict[str, list[Any]]) -> list[Block]:
    p = r.pareto
    blocks = [Block("h2", "Pareto fronts: loss vs measured peak memory, per budget level")]
    if p.message:
        blocks.append(Block("p", p.message))
    labels = list(dict.fromkeys(pt.budget_label for pt in p.front))
    rows = [("level (FLOPs)", "on the front", "lowest loss (its memory)", "least memory (its loss)")]
    for label in labels:
        pts = [pt for pt in p.front if pt.budget_label == label]
        best = min(pts, key=lambda pt: pt.values["final_val_loss"] or float("inf"))
        small = min(pts, key=lambda pt: pt.values["peak_memory_bytes"] or float("inf"))
        rows.append((label or "off-level", str(len(pts)),
                     f"{num(best.values['final_val_loss'])} ({_mib(best.values['peak_memory_bytes'])})",
                     f"{num(small.values['final_val_loss'])} ({_mib(small.values['peak_memory_bytes'])})"))
    if len(rows) > 1:
        blocks.append(Block("table", rows=tuple(rows)))
    blocks += [Block("img", f.name) for f in figures.get("pareto", []) if f.suffix == ".png"]
    return blocks


def _mib(value: float | None) -> str:
    return "-" if value is None else f"{value / 2 ** 20:.3g} MiB"


def _arms(r: SweepAnswers, figures: dict[str, list[Any]]) -> list[Block]:
    c = r.compare
    if c is None:
        return [Block("h2", "Arms"), Block("p", f"The sweep has {r.n_arms} arm(s) with finished trials: "
                                                "an arm comparison needs 2 or more.")]
    blocks = [Block("h2", f"Arms against {c.baseline}"), Block("p", c.selection)]
    verdicts = [f"{b.budget_label}, {a.arm}: {a.diff.text}" for b in c.budgets for a in b.arms if a.diff is not None]
    verdicts += [m.text for m in c.multipliers]
    if verdicts:
        blocks.append(Block("ul", items=tuple(verdicts)))
    blocks += [Block("p", note) for note in [*c.notes, *([c.message] if c.message else [])]]
    blocks += [Block("img", f.name) for f in figures.get("arms", []) if f.suffix == ".png"]
    return blocks


def blocks(r: SweepAnswers, figures: dict[str, list[Any]]) -> list[Block]:
    return [*_head(r), *_levels(r, figures), *_laws(r, figures), *_pareto(r, figures), *_arms(r, figures)]


def markdown(items: list[Block]) -> str:
    out = []
    for b in items:
        if b.kind in ("h1", "h2"):
            out.append(("# " if b.kind == "h1" else "## ") + b.text)
        elif b.kind == "p":
            out.append(b.text)
        elif b.kind == "ul":
            out.append("\n".join(f"- {item}" for item in b.items))
        elif b.kind == "table":
            cells = [[c.replace("|", "\\|") for c in row] for row in b.rows]
            lines = ["| " + " | ".join(cells[0]) + " |", "|" + "---|" * len(cells[0])]
            out.append("\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells[1:]]))
        elif b.kind == "img":
            out.append(f"![{b.text}]({b.text})")
    return "\n\n".join(out) + "\n"


def _inline(text: str) -> str:
    """HTML of one line of our Markdown subset: **bold** and `code`."""
    parts = html.escape(text).split("**")
    text = "".join(f"<strong>{p}</strong>" if i % 2 else p for i, p in enumerate(parts))
    parts = text.split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def to_html(items: list[Block], title: str) -> str:
    body = []
    for b in items:
        if b.kind in ("h1", "h2"):
            body.append(f"<{b.kind}>{_inline(b.text)}</{b.kind}>")
        elif b.kind == "p":
            body.append(f"<p>{_inline(b.text)}</p>")
        elif b.kind == "ul":
            body.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in b.items) + "</ul>")
        elif b.kind == "table":
            head = "".join(f"<th>{html.escape(c)}</th>" for c in b.rows[0])
            rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in b.rows[1:])
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif b.kind == "img":
            body.append(f'<img src="{html.escape(b.text)}" alt="{html.escape(b.text)}">')
    style = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:20px auto;color:#222}"
             "table{border-collapse:collapse;font-size:13px;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 6px}"
             "th{background:#f1f3f5}img{max-width:100%;width:760px}li{margin:2px 0}")
    return (f"<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
