"""Static figures of a sweep's answers (matplotlib, Agg backend): PNG and SVG, labelled axes with units,
intervals drawn. Each function draws one figure from `collect.SweepAnswers` and returns the files it wrote,
or nothing when there is nothing to draw (the summary says what is missing).

Flagged fits are drawn as on the page: a dashed curve and no optimum star.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: files only

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from dashboard.report.collect import SweepAnswers, blocking, law_curves  # noqa: E402

COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
METHOD_STYLE = {"approach2": ("#1f77b4", "Approach 2 (IsoFLOP vertices)"), "approach3": ("#ff7f0e", "Approach 3 (parametric)"),
                "coe_law": ("#2ca02c", "CoE/MoE law")}
STYLE: dict[str, Any] = {"font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "legend.fontsize": 8, "axes.grid": True,
         "grid.alpha": 0.3, "figure.dpi": 100, "savefig.dpi": 200, "savefig.bbox": "tight", "svg.fonttype": "none"}


def _style() -> Any:
    """The figures' rc settings (matplotlib's stubs type the keys as literals: one ignore, here)."""
    return plt.rc_context(STYLE)  # type: ignore[arg-type]


def _save(fig: Figure, out_dir: Path, name: str) -> list[Path]:
    paths = [out_dir / f"{name}.png", out_dir / f"{name}.svg"]
    for path in paths:
        fig.savefig(path)
    plt.close(fig)
    return paths


def isoflop(result: SweepAnswers, out_dir: Path) -> list[Path]:
    """Loss against active parameters per budget level, with each level's parabola and its vertex (95% CI in x)."""
    budgets = [b for b in result.frontier.budgets if b.points]
    if not budgets:
        return []
    with _style():
        fig, ax = plt.subplots(figsize=(6.4, 4.4))
        for i, b in enumerate(budgets):
            color = COLORS[i % len(COLORS)]
            ax.scatter([p.x for p in b.points], [p.loss for p in b.points], s=18, color=color,
                       label=f"{b.budget_label} FLOPs" + (" (flagged fit)" if b.flagged else ""), zorder=3)
            if b.fit is None:
                continue
            ax.plot(b.fit.curve_x, b.fit.curve_loss, color=color, lw=1.0 if b.flagged else 1.4,
                    ls="--" if b.flagged else "-", alpha=0.8)
            if not b.flagged and b.fit.x_opt is not None and b.fit.loss_opt is not None:
                ci = b.fit.x_opt_ci
                xerr = None if ci is None else [[b.fit.x_opt - ci[0]], [ci[1] - b.fit.x_opt]]
                ax.errorbar([b.fit.x_opt], [b.fit.loss_opt], xerr=xerr, fmt="*", ms=12, color=color, mec="black",
                            mew=0.6, capsize=3, zorder=4)
        ax.set_xscale("log")
        ax.set_xlabel("active parameters N (count, log scale)")
        ax.set_ylabel("final validation loss (nats/token)")
        ax.set_title("IsoFLOP profiles: ★ fitted optimum with 95% CI; dashed: flagged fit")
        ax.legend(title="training budget", loc="best")
        return _save(fig, out_dir, "isoflop")


def _band(ax: Any, xs: list[float], values: list[float], cis: list[Any], color: str, label: str, dashed: bool) -> None:
    ax.plot(xs, values, color=color, lw=1.4, ls="--" if dashed else "-", label=label + (" (flagged)" if dashed else ""))
    pairs = [(x, ci) for x, ci in zip(xs, cis, strict=True) if ci is not None]
    if pairs:
        ax.fill_between([x for x, _ in pairs], [ci[0] for _, ci in pairs], [ci[1] for _, ci in pairs], color=color,
                        alpha=0.15, lw=0)


def optimum(result: SweepAnswers, out_dir: Path) -> list[Path]:
    """Optimal N and D against the budget: the levels' vertices (95% CI) and every fitted law with its 95% band."""
    curves = law_curves(result)
    points = result.scaling.points
    if not points and not curves:
        return []
    with _style():
        fig, (ax_n, ax_d) = plt.subplots(1, 2, figsize=(10.5, 4.2))
        for ax, key in ((ax_n, "n"), (ax_d, "d")):
            for method, curve in curves.items():
                color, label = METHOD_STYLE.get(method, ("#444", method))
                values = [getattr(o, f"{key}_opt") for _, o in curve]
                cis = [getattr(o, f"{key}_opt_ci") for _, o in curve]
                _band(ax, [c for c, _ in curve], values, cis, color, label, blocking(result.scaling.flags, method))
            ok = [p for p in points if (p.x_opt if key == "n" else p.tokens_opt) is not None]
            for flagged in (False, True):
                sel = [p for p in ok if p.flagged == flagged]
                if not sel:
                    continue
                ys = [p.x_opt if key == "n" else p.tokens_opt for p in sel]
                yerr = None
                if key == "n":
                    yerr = [[p.x_opt - p.x_opt_ci[0] if p.x_opt_ci else 0 for p in sel],
                            [p.x_opt_ci[1] - p.x_opt if p.x_opt_ci else 0 for p in sel]]
                ax.errorbar([p.budget_flops for p in sel], ys, yerr=yerr, fmt="o", mfc="white" if flagged else "black",
                            mec="black", color="black", ms=5, capsize=3, zorder=4,
                            label="IsoFLOP vertex, 95% CI" + (" (flagged level)" if flagged else ""))
            if result.target_flops:
                ax.axvline(result.target_flops, color="#999", lw=0.8, ls=":", label="report target (10x largest)")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("training budget C (FLOPs, log scale)")
            _clip(ax, [getattr(o, f"{key}_opt") for curve in curves.values() for _, o in curve]
                  + [p.x_opt if key == "n" else p.tokens_opt for p in ok])
        ax_n.set_ylabel("optimal active parameters N* (count)")
        ax_d.set_ylabel("optimal training tokens D* (tokens)")
        ax_n.set_title("Optimal model size vs budget (bands: 95% CI)")
        ax_d.set_title("Optimal data vs budget (bands: 95% CI)")
        handles, labels = ax_n.get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=3, bbox_to_anchor=(0.5, -0.1), frameon=False)
        return _save(fig, out_dir, "optimum")


def _clip(ax: Any, values: list[float | None], spread: float = 30.0) -> None:
    """y limits around the fitted values (x/÷ spread), so that a flagged law's vast band cannot flatten the rest."""
    finite = [v for v in values if v is not None and v > 0 and v < float("inf")]
    if finite:
        ax.set_ylim(min(finite) / spread, max(finite) * spread)


def pareto(result: SweepAnswers, out_dir: Path) -> list[Path]:
    """Loss against measured peak memory: one Pareto front per budget level, dominated trials in grey."""
    front = result.pareto.front
    if not front:
        return []
    mem, loss = "peak_memory_bytes", "final_val_loss"
    mib = 2.0 ** 20
    with _style():
        fig, ax = plt.subplots(figsize=(6.4, 4.4))
        dom = [(m, v) for p in result.pareto.dominated
               if (m := p.values.get(mem)) is not None and (v := p.values.get(loss)) is not None]
        ax.scatter([m / mib for m, _ in dom], [v for _, v in dom], s=12, color="#bbb", label="dominated")
        labels = list(dict.fromkeys(p.budget_label for p in front))
        for i, label in enumerate(labels):
            pts = sorted((m, v) for p in front if p.budget_label == label
                         and (m := p.values.get(mem)) is not None and (v := p.values.get(loss)) is not None)
            ax.step([m / mib for m, _ in pts], [v for _, v in pts], where="post", color=COLORS[i % len(COLORS)],
                    marker="o", ms=5, lw=1.2, label=f"front at {label or 'off-level'} FLOPs")
        ax.set_xscale("log")
        plain = FuncFormatter(lambda v, _: f"{v:g}")
        ax.xaxis.set_major_formatter(plain)
        ax.xaxis.set_minor_formatter(plain)
        ax.set_xlabel("measured peak memory (MiB, log scale)")
        ax.set_ylabel("final validation loss (nats/token)")
        ax.set_title("Pareto fronts per training budget")
        ax.legend(loc="best")
        return _save(fig, out_dir, "pareto")


def arms(result: SweepAnswers, out_dir: Path) -> list[Path]:
    """Mean loss per arm per budget with its 95% CI over seeds (the arm's best config at each budget)."""
    compare = result.compare
    if compare is None or not compare.budgets:
        return []
    with _style():
        fig, ax = plt.subplots(figsize=(6.4, 4.4))
        n = max(len(compare.arms), 1)
        for i, arm in enumerate(compare.arms):
            rows = [(b.budget_flops, a) for b in compare.budgets for a in b.arms if a.arm == arm and b.budget_flops]
            if not rows:
                continue
            shift = 1.0 + 0.04 * (i - (n - 1) / 2)  # side by side in log x
            xs = [f * shift for f, _ in rows if f is not None]
            means = [a.summary.mean for _, a in rows]
            err = [[a.summary.mean - a.summary.ci[0] if a.summary.ci else 0 for _, a in rows],
                   [a.summary.ci[1] - a.summary.mean if a.summary.ci else 0 for _, a in rows]]
            ax.errorbar(xs, means, yerr=err, fmt="o-", ms=5, capsize=3, lw=1, color=COLORS[i % len(COLORS)],
                        label=arm + (" (baseline)" if arm == compare.baseline else ""))
        ax.set_xscale("log")
        ax.set_xlabel("training budget C (FLOPs, log scale)")
        ax.set_ylabel("final validation loss (nats/token)")
        ax.set_title(f"Arms at equal training FLOPs: mean over seeds, {int(compare.level * 100)}% CI")
        ax.legend(title="arm", loc="best")
        return _save(fig, out_dir, "arms")


def draw_all(result: SweepAnswers, out_dir: Path) -> dict[str, list[Path]]:
    return {name: fn(result, out_dir) for name, fn in (("isoflop", isoflop), ("optimum", optimum), ("pareto", pareto),
                                                       ("arms", arms))}
