"""GPU throughput: MFU of a trial's training step, eager vs compiled vs CUDA graphs, and one CoE/MoE layer
against a dense SwiGLU of equal FLOPs. Needs a CUDA device; without one it says so and exits 0.

Configurations (bf16 autocast, fp32 master weights, the runner's own step: runners/step.TrainStep):
  paper-moe   the paper's (arXiv 2506.18945) MoE: d=1024, 4 layers, 63 routed + 1 shared experts of
              width 704, K=8, C=1, batch 64 x seq 512 (head_dim 64, vocab --vocab, default 32000)
  paper-coe   the same with C=2, K=4 (the paper's iso-compute CoE)
  sweep-*     small sweep configs (iso_flops-like widths, batch 64 x seq 512)
Modes: eager; compiled (torch.compile, default mode); cudagraphs (mode="reduce-overhead", what a
trial uses on CUDA). Per config and mode it prints the median step ms, tokens/s and
    MFU = train FLOPs per token (coe_sweep.accounting, full attention count) x tokens/s / peak bf16 FLOP/s
(peak from runners/device.PEAK_BF16_FLOPS; no MFU for a GPU not in that table), and per config
the layer / dense-equivalent ratio: one CoE/MoE FFN layer (forward + backward, bf16) against one
SwiGLU whose width gives the same FLOPs per token (routers + routed + shared experts), eager.

    python benchmarks/gpu_throughput.py [--configs paper-moe,paper-coe,sweep-small,sweep-mid]
                                        [--modes eager,compiled,cudagraphs] [--steps 20] [--warmup 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from coe_sweep.accounting import forward_flops_per_token, train_flops_per_token
from coe_sweep.model.config import ModelConfig


@dataclass(frozen=True)
class Case:
    model: ModelConfig
    batch: int
    seq_len: int


def cases(vocab: int) -> dict[str, Case]:
    paper = ModelConfig(vocab_size=vocab, max_seq_len=512, d_model=1024, n_layers=4, head_dim=64, d_expert=704,
                        n_experts=63, n_shared=1, top_k=8, iterations=1)
    sweep = ModelConfig(vocab_size=vocab, max_seq_len=512, d_model=128, n_layers=2, head_dim=16, d_expert=64,
                        n_experts=8, n_shared=1, top_k=2, iterations=2)
    return {
        "paper-moe": Case(paper, 64, 512),
        "paper-coe": Case(replace(paper, iterations=2, top_k=4), 64, 512),
        "sweep-small": Case(sweep, 64, 512),
        "sweep-mid": Case(replace(sweep, d_model=256, d_expert=128, n_layers=4), 64, 512),
    }


def time_steps(step: Callable[[], object], steps: int, warmup: int) -> float:
    """Median seconds per call, each timed to the end of its device work."""
    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def trial_step_s(case: Case, mode: str, steps: int, warmup: int) -> float:
    from coe_sweep.model.lm import CoELM
    from coe_sweep.trial import TrainConfig
    from runners.device import resolve_device
    from runners.step import TrainStep

    tc = TrainConfig(batch_size=case.batch, seq_len=case.seq_len, device="cuda", dtype="bf16", compile="off")
    torch.manual_seed(0)
    model = CoELM(case.model).cuda()
    stepper = TrainStep(model, tc, total_steps=10_000, device=resolve_device(tc))
    if mode != "eager":
        stepper.compile(mode="reduce-overhead" if mode == "cudagraphs" else None)
    batch = torch.randint(0, case.model.vocab_size, (case.batch, case.seq_len + 1), device="cuda")
    return time_steps(lambda: stepper.run(batch), steps, warmup)


def layer_ratio(case: Case, steps: int, warmup: int) -> tuple[float, float]:
    """(CoE/MoE layer ms, dense-equivalent SwiGLU ms), forward + backward, bf16, one layer."""
    from coe_sweep.model.chain import ChainOfExperts
    from coe_sweep.model.layers import SwiGLU, init_weights

    cfg = case.model
    terms = forward_flops_per_token(cfg, case.seq_len)
    ffn_flops = (terms.routers + terms.routed_experts + terms.shared_experts) / cfg.n_layers
    dense = SwiGLU(cfg.d_model, max(1, round(ffn_flops / (6 * cfg.d_model)))).cuda()
    init_weights(dense, cfg.init_std)
    layer = ChainOfExperts(cfg).cuda()
    u = F.rms_norm(torch.randn(case.batch, case.seq_len, cfg.d_model, device="cuda"), (cfg.d_model,))
    grad = torch.randn_like(u)

    def run(module: torch.nn.Module) -> None:
        x = u.detach().requires_grad_(True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = module(x)
            y = out.u_BTD if hasattr(out, "u_BTD") else out
            loss = (y.float() * grad).sum() + (sum(out.aux_losses) if hasattr(out, "aux_losses") else 0)
        loss.backward()
        module.zero_grad(set_to_none=True)

    return time_steps(lambda: run(layer), steps, warmup), time_steps(lambda: run(dense), steps, warmup)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", default="paper-moe,paper-coe,sweep-small,sweep-mid")
    p.add_argument("--modes", default="eager,compiled,cudagraphs")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5, help="untimed steps (compilation happens in the first)")
    p.add_argument("--vocab", type=int, default=32000)
    args = p.parse_args()
    if not torch.cuda.is_available():
        print("gpu_throughput: no CUDA device here (torch.cuda.is_available() is False); nothing was measured.")
        return 0
    from runners.device import peak_bf16_flops

    name = torch.cuda.get_device_name()
    peak = peak_bf16_flops(name)
    print(f"{name}, torch {torch.__version__}, peak bf16 {peak or float('nan'):.3g} FLOP/s; medians of {args.steps} steps")
    all_cases = cases(args.vocab)
    for key in args.configs.split(","):
        case = all_cases[key]
        cfg = case.model
        flops_per_token = train_flops_per_token(cfg, case.seq_len)
        tokens = case.batch * case.seq_len
        print(f"{key}: d={cfg.d_model} L={cfg.n_layers} N={cfg.n_experts}+{cfg.n_shared} F={cfg.d_expert} "
              f"C={cfg.iterations} K={cfg.top_k}, batch {case.batch}x{case.seq_len}, "
              f"{flops_per_token:.3g} train FLOPs/token")
        for mode in args.modes.split(","):
            try:
                step_s = trial_step_s(case, mode, args.steps, args.warmup)
            except torch.OutOfMemoryError as e:
                print(f"  {mode:10s} out of memory ({e})")
                continue
            finally:
                torch.cuda.empty_cache()  # the step's model and optimizer are gone: free them for the next
            rate = tokens / step_s
            mfu = f"{flops_per_token * rate / peak:6.1%}" if peak else "   n/a"
            print(f"  {mode:10s} {step_s * 1e3:9.1f} ms/step {rate:12.0f} tokens/s  MFU {mfu}")
        layer_s, dense_s = layer_ratio(case, args.steps, args.warmup)
        print(f"  layer {layer_s * 1e3:.2f} ms, dense-equivalent {dense_s * 1e3:.2f} ms: ratio {layer_s / dense_s:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
