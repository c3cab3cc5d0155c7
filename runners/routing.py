"""Routing statistics of a trained model, summarised into a flat JSON-able dict for tracking.

From one forward pass with `return_stats=True` (CoELM: stats[layer][iteration] =
{tokens_per_expert (N,), entropy, overlap_next}), per layer l and iteration t:
  `L{l}.C{t}.max_load` / `.min_load`: tokens of the busiest / idlest expert over the mean (1.0 = balanced),
  `L{l}.C{t}.entropy`: mean router entropy (nats), `L{l}.C{t}.overlap_next`: overlap of the experts
  chosen at t and t+1 (absent for the last iteration), `L{l}.C{t}.E{e}.load`: expert e's tokens over the mean
  (the load of every expert, for the dashboard's load plots; added with issue 13);
and over all of them: `max_load` (worst), `mean_entropy`, `mean_overlap_next`, `dead_experts`
(expert slots that got no token). Dense models (no routers) give {}.
"""

from __future__ import annotations

from typing import Any

import torch


def summarise_routing(stats: list[list[dict[str, Any]]]) -> dict[str, float]:
    summary: dict[str, float] = {}
    max_loads: list[float] = []
    entropies: list[float] = []
    overlaps: list[float] = []
    dead = 0
    for layer, iterations in enumerate(stats):
        for t, it in enumerate(iterations):
            counts = torch.as_tensor(it["tokens_per_expert"]).double()
            mean = counts.mean().item()
            prefix = f"L{layer}.C{t}"
            if mean > 0:
                summary[f"{prefix}.max_load"] = counts.max().item() / mean
                summary[f"{prefix}.min_load"] = counts.min().item() / mean
                max_loads.append(summary[f"{prefix}.max_load"])
                summary |= {f"{prefix}.E{e}.load": float(c) / mean for e, c in enumerate(counts.tolist())}
            dead += int((counts == 0).sum().item())
            summary[f"{prefix}.entropy"] = float(it["entropy"])
            entropies.append(float(it["entropy"]))
            if it.get("overlap_next") is not None:
                summary[f"{prefix}.overlap_next"] = float(it["overlap_next"])
                overlaps.append(float(it["overlap_next"]))
    if entropies:
        summary["mean_entropy"] = sum(entropies) / len(entropies)
        summary["dead_experts"] = float(dead)
    if max_loads:
        summary["max_load"] = max(max_loads)
    if overlaps:
        summary["mean_overlap_next"] = sum(overlaps) / len(overlaps)
    return summary
