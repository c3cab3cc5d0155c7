"""Throughput (tokens/s, forward + backward) of one CoE/MoE FFN layer under each dispatch strategy.

Compares, at d=256, d_expert=128, N=64 routed experts (no shared expert unless --shared):
  grouped   ChainOfExperts with sort + bincount offsets + F.grouped_mm (the model's fast path)
  loop      ChainOfExperts with the per-expert Python loop (the FLOP-countable reference path)
  boolmask  the reference implementation's strategy: tokens `repeat_interleave`d K times and a
            per-expert boolean-mask loop `y[mask] = expert(x[mask])`
  dense     one SwiGLU FFN of width C*K*d_expert: the same routed-expert FLOPs with no routing
for MoE (C=1, K=8) and CoE (C=2, K=4). Prints medians over repeats and the ratios layer/dense and
grouped/boolmask. Run: `python benchmarks/layer_throughput.py [--tokens 8192] [--threads 1]`.

The machine these were measured on is shared (2 cores, up to 8 jobs): variants run round-robin
within each repeat, and tokens per CPU-second (process time, one thread) is reported beside wall
tokens/s because it is far less sensitive to other processes than wall time.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import replace

import torch
import torch.nn.functional as F

from coe_sweep.model.chain import ChainOfExperts
from coe_sweep.model.config import ModelConfig
from coe_sweep.model.experts import RoutedExperts
from coe_sweep.model.layers import SwiGLU, init_weights


class BoolMaskExperts(RoutedExperts):
    """The reference code's dispatch (DeepSeek-V2 training path), for comparison only."""

    def forward(self, x_SD: torch.Tensor, topk_idx_SK: torch.Tensor, weights_SK: torch.Tensor) -> torch.Tensor:
        S, K = topk_idx_SK.shape
        x_AD = x_SD.repeat_interleave(K, dim=0)
        flat_A = topk_idx_SK.reshape(-1)
        y_AD = torch.empty_like(x_AD)
        for e in range(self.n_experts):
            mask_A = flat_A == e
            y_AD[mask_A] = self._expert(x_AD[mask_A], e)
        return (y_AD.view(S, K, -1) * weights_SK.unsqueeze(-1)).sum(dim=1)


def build(kind: str, cfg: ModelConfig) -> torch.nn.Module:
    if kind == "dense":
        m = SwiGLU(cfg.d_model, cfg.iterations * cfg.top_k * cfg.d_expert)
        init_weights(m, cfg.init_std)
        return m
    layer = ChainOfExperts(replace(cfg, dispatch="loop" if kind == "loop" else "grouped"))
    if kind == "boolmask":
        layer.experts.__class__ = BoolMaskExperts
    return layer


def step(m: torch.nn.Module, u_BTD: torch.Tensor, grad_BTD: torch.Tensor) -> None:
    u_BTD = u_BTD.detach().requires_grad_(True)
    if isinstance(m, ChainOfExperts):
        out = m(u_BTD)
        loss = (out.u_BTD * grad_BTD).sum() + sum(out.aux_losses)
    else:
        loss = (m(u_BTD) * grad_BTD).sum()
    loss.backward()
    m.zero_grad(set_to_none=True)


def median_tokens_per_s(fns: dict[str, Callable[[], None]], tokens: int, repeats: int,
                        warmup: int) -> dict[str, tuple[float, float]]:
    """Round-robin over the variants in every repeat, so that load from other processes on a shared
    machine hits all of them alike. Returns, per variant, tokens/s from the median wall time and
    from the median process CPU time (user + system; with one thread it is the time the step
    actually had a core, so it is robust to other processes taking turns on the machine)."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    wall_s: dict[str, list[float]] = {k: [] for k in fns}
    cpu_s: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for kind, fn in fns.items():
            w0, c0 = time.perf_counter(), time.process_time()
            fn()
            cpu_s[kind].append(time.process_time() - c0)
            wall_s[kind].append(time.perf_counter() - w0)
    return {k: (tokens / statistics.median(wall_s[k]), tokens / statistics.median(cpu_s[k])) for k in fns}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokens", type=int, default=8192, help="tokens per step (batch x seq)")
    p.add_argument("--seq-len", type=int, default=512)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--shared", type=int, default=0, help="shared experts (0 = routed part only)")
    p.add_argument("--uniform", action="store_true", help="uniform (balanced) routing")
    p.add_argument("--kinds", default="grouped,loop,boolmask,dense")
    p.add_argument("--default-malloc", action="store_true",
                   help="leave glibc malloc at its defaults (a trial sets runners.device.keep_freed_memory)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if not args.default_malloc:
        from runners.device import keep_freed_memory

        keep_freed_memory()
    torch.manual_seed(0)
    B, T = max(1, args.tokens // args.seq_len), min(args.seq_len, args.tokens)
    tokens = B * T
    kinds = args.kinds.split(",")
    print(f"torch {torch.__version__}, threads={args.threads}, tokens/step={tokens}, d=256, F=128, N=64, "
          f"shared={args.shared}, uniform_routing={args.uniform}, default malloc={args.default_malloc}; "
          f"median of {args.repeats} (fwd+bwd)")
    for C, K in ((1, 8), (2, 4)):
        cfg = ModelConfig(d_model=256, n_heads=4, d_expert=128, n_experts=64, top_k=K, iterations=C,
                          n_shared=args.shared, max_seq_len=T, uniform_routing=args.uniform)
        u = F.rms_norm(torch.randn(B, T, 256), (256,))
        g = torch.randn(B, T, 256)
        modules = {kind: build(kind, cfg) for kind in kinds}
        fns = {kind: (lambda m=m, u=u, g=g: step(m, u, g)) for kind, m in modules.items()}
        rates = median_tokens_per_s(fns, tokens, args.repeats, args.warmup)
        for kind in kinds:
            wall, cpu = rates[kind]
            print(f"  C={C} K={K} {kind:9s} {wall:9.0f} tokens/s (wall)  {cpu:9.0f} tokens/cpu-s")
        pairs = [(k, "dense") for k in kinds if k != "dense" and "dense" in rates]
        if "grouped" in rates and "boolmask" in rates:
            pairs.append(("grouped", "boolmask"))
        for a, b in pairs:
            print(f"  C={C} K={K} {a}/{b} = {rates[a][0] / rates[b][0]:.2f} (wall), "
                  f"{rates[a][1] / rates[b][1]:.2f} (cpu)")

if __name__ == "__main__":
    main()
