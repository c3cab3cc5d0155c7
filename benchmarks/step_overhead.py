"""Step overhead: a trial's training step against a plain dense transformer of EQUAL training FLOPs.

For each iso_flops-sized config (search_spaces/iso_flops.yaml: d_expert 64, one shared expert,
batch 16 x seq 128, byte vocabulary; head_dim 16), this builds in the same process:
  trial  CoELM with the runner's own training step (optimizer, clipping, schedule, loss checks)
  peer   a plain nanoGPT-style dense transformer (learned positions, LayerNorm, fused qkv, SDPA,
         GELU MLP) with the same d_model, layers, heads and head_dim, and an MLP width chosen so that
         its matmul FLOPs per token equal the trial's (routers + routed + shared experts per layer);
         fused AdamW, clip 1.0, no host syncs: the fastest plain step torch offers here.
and a third, `dense`: this repo's own CoELM in dense mode (the same RMSNorm, rotary attention and
SwiGLU, one dense SwiGLU of equal FLOPs per layer, the same runner step): the trial against it is the
cost of routing and of the chain alone, where the nanoGPT peer also counts the architecture
(RoPE, RMSNorm and SwiGLU against learned positions, LayerNorm and GELU).
It prints per config: median step milliseconds of all three (wall and process CPU time, 1 torch thread
as a sweep runs a trial; the two run round-robin so load from other processes hits both alike), the
ratio trial / peer of the medians, of the median CPU times and of the fastest steps (on a shared
machine the fastest step is the one nothing preempted), the ops each step dispatches (counted by a
TorchDispatchMode: what Python and autograd send to the dispatcher), the aten ops the profiler sees (nested calls included: F.grouped_mm's per-expert internals count there) and the host
reads `aten::_local_scalar_dense` among them (on CPU grouped_mm reads its offsets inside the kernel).

    python benchmarks/step_overhead.py [--repeats 15] [--threads 1] [--configs all|quick] [--compiled]

The trial step comes from `runners.step` when it exists; on the original code (before issue 14)
it falls back to a replica of that code's `runners.train._train_step`, so the same file measures
before and after: `PYTHONPATH=<old checkout> python benchmarks/step_overhead.py`.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from coe_sweep.accounting import forward_flops_per_token
from coe_sweep.model.config import ModelConfig
from coe_sweep.model.lm import CoELM

HEAD_DIM = 16
BATCH, SEQ_LEN, VOCAB, D_EXPERT = 16, 128, 258, 64
# (d_model, n_layers, iterations C, top_k K, n_experts N): the corners of iso_flops' space
CONFIGS = [
    (16, 1, 1, 1, 4), (16, 2, 2, 2, 8), (32, 1, 3, 1, 4), (32, 2, 1, 2, 8),
    (48, 2, 2, 1, 8), (64, 1, 2, 2, 4), (64, 2, 1, 2, 8), (64, 2, 3, 1, 8),
]
QUICK = [CONFIGS[1], CONFIGS[2], CONFIGS[7]]


def trial_config(d: int, layers: int, c: int, k: int, n: int) -> ModelConfig:
    # n_heads (not head_dim) so that the original ModelConfig accepts it too
    return ModelConfig(vocab_size=VOCAB, max_seq_len=SEQ_LEN, d_model=d, n_layers=layers, n_heads=d // HEAD_DIM,
                       d_expert=D_EXPERT, n_experts=n, n_shared=1, top_k=k, iterations=c)


# ---------------------------------------------------------------- the plain dense peer (nanoGPT)

class PeerBlock(nn.Module):
    def __init__(self, d: int, n_heads: int, mlp_width: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.ln_1 = nn.LayerNorm(d, bias=False)
        self.c_attn = nn.Linear(d, 3 * d, bias=False)
        self.c_proj = nn.Linear(d, d, bias=False)
        self.ln_2 = nn.LayerNorm(d, bias=False)
        self.c_fc = nn.Linear(d, mlp_width, bias=False)
        self.mlp_proj = nn.Linear(mlp_width, d, bias=False)

    def forward(self, x_BTD: torch.Tensor) -> torch.Tensor:
        B, T, D = x_BTD.shape
        q, k, v = self.c_attn(self.ln_1(x_BTD)).split(D, dim=2)
        q, k, v = (t.view(B, T, self.n_heads, D // self.n_heads).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, nh, T, hs)
        x_BTD = x_BTD + self.c_proj(y.transpose(1, 2).reshape(B, T, D))
        return x_BTD + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x_BTD))))


class PeerGPT(nn.Module):
    def __init__(self, cfg: ModelConfig, mlp_width: int) -> None:
        super().__init__()
        self.wte = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.wpe = nn.Embedding(cfg.max_seq_len, cfg.d_model)
        self.blocks = nn.ModuleList(PeerBlock(cfg.d_model, cfg.n_heads, mlp_width) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(cfg.d_model, bias=False)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)

    def forward(self, idx_BT: torch.Tensor, targets_BT: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(idx_BT.shape[1], device=idx_BT.device)
        x = self.wte(idx_BT) + self.wpe(pos)
        for block in self.blocks:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets_BT.reshape(-1))


def peer_mlp_width(cfg: ModelConfig) -> int:
    """MLP width W whose two matmuls (2 x 2*D*W FLOPs/token) equal the trial's FFN FLOPs per layer."""
    terms = forward_flops_per_token(cfg, SEQ_LEN)
    ffn_per_layer = (terms.routers + terms.routed_experts + terms.shared_experts) / cfg.n_layers
    return max(1, round(ffn_per_layer / (4 * cfg.d_model)))


def dense_config(cfg: ModelConfig) -> ModelConfig:
    """CoELM in dense mode (C=1, one expert, no shared) whose SwiGLU width gives the trial's FFN FLOPs."""
    terms = forward_flops_per_token(cfg, SEQ_LEN)
    ffn_per_layer = (terms.routers + terms.routed_experts + terms.shared_experts) / cfg.n_layers
    width = max(1, round(ffn_per_layer / (6 * cfg.d_model)))
    return replace(cfg, dense=True, iterations=1, n_experts=1, top_k=1, n_shared=0, d_expert=width)


def peer_step(cfg: ModelConfig) -> tuple[Callable[[torch.Tensor], None], nn.Module]:
    model = PeerGPT(cfg, peer_mlp_width(cfg))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, betas=(0.9, 0.95), weight_decay=0.01, fused=True)

    def step(batch_BT1: torch.Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        model(batch_BT1[:, :-1], batch_BT1[:, 1:]).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    return step, model


# ---------------------------------------------------------------- the trial step

def trial_step(cfg: ModelConfig, compiled: bool = False) -> tuple[Callable[[torch.Tensor], None], nn.Module]:
    from coe_sweep.trial import TrainConfig

    tc = TrainConfig(batch_size=BATCH, seq_len=SEQ_LEN, lr=3e-3, warmup_steps=10, schedule="cosine")
    model = CoELM(cfg)
    if is_original_code():  # a replica of its runners.train._train_step
        return _legacy_trial_step(model, tc), model
    from runners.device import resolve_device
    from runners.step import TrainStep

    train_step = TrainStep(model, tc, total_steps=10_000, device=resolve_device(replace(tc, device="cpu")))
    if compiled:
        torch._dynamo.reset()
        train_step.compile()  # compiles in the first (warm-up) step
    return train_step.run, model


def is_original_code() -> bool:
    """True on the code before issue 14 (PYTHONPATH=<old checkout>). Decided by a feature of the imported
    runners package, not by an ImportError: an editable install can resolve a submodule that the old
    package lacks from the new tree."""
    import runners.device

    return not hasattr(runners.device, "keep_freed_memory")


def _legacy_trial_step(model: nn.Module, tc: object) -> Callable[[torch.Tensor], None]:
    from runners.optim import build_optimizer, build_schedule

    opt = build_optimizer(model, tc)
    schedule = build_schedule(opt, 10_000, tc)

    def step(batch_BT1: torch.Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        out = model(batch_BT1[:, :-1], targets_BT=batch_BT1[:, 1:])
        loss = out.loss + out.aux_loss
        ce, total = out.loss.item(), loss.item()
        if not (math.isfinite(ce) and math.isfinite(total)):
            return
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        schedule.step()

    return step


# ---------------------------------------------------------------- measuring

@dataclass
class Measured:
    wall_ms: float  # median
    cpu_ms: float  # median process CPU time
    min_ms: float  # fastest step: what the step costs when nothing else takes the core (a shared machine)
    dispatched: int  # ops dispatched per step (TorchDispatchMode)
    ops: int  # aten ops per step as the profiler sees them, nested included
    syncs: int


class _DispatchCounter(TorchDispatchMode):
    """Counts the ops that reach the dispatcher from Python and autograd (not those a C++ kernel calls)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        self.ops += 1
        return func(*args, **(kwargs or {}))


def count_ops(step: Callable[[torch.Tensor], None], batch: torch.Tensor) -> tuple[int, int, int]:
    """Ops of one step: dispatched (TorchDispatchMode), aten ops the profiler sees (nested calls
    included, e.g. grouped_mm's per-expert internals), and the host reads among those."""
    with _DispatchCounter() as counter:
        step(batch)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        step(batch)
    names = [e.name for e in prof.events()]
    return counter.ops, sum(n.startswith("aten::") for n in names), sum(n == "aten::_local_scalar_dense" for n in names)


def measure(steps: dict[str, Callable[[torch.Tensor], None]], batch: torch.Tensor, repeats: int,
            warmup: int, uncounted: frozenset[str] = frozenset()) -> dict[str, Measured]:
    """Medians and fastest steps, round-robin; op counts except for `uncounted` (a compiled step: a
    dispatch mode or the profiler around it would not see the compiled graph's kernels)."""
    for step in steps.values():
        for _ in range(warmup):
            step(batch)
    wall: dict[str, list[float]] = {k: [] for k in steps}
    cpu: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            w0, c0 = time.perf_counter(), time.process_time()
            step(batch)
            cpu[name].append(time.process_time() - c0)
            wall[name].append(time.perf_counter() - w0)
    out = {}
    for name, step in steps.items():
        dispatched, ops, syncs = (-1, -1, -1) if name in uncounted else count_ops(step, batch)
        out[name] = Measured(1e3 * statistics.median(wall[name]), 1e3 * statistics.median(cpu[name]),
                             1e3 * min(wall[name]), dispatched, ops, syncs)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--configs", choices=("all", "quick"), default="all")
    p.add_argument("--compiled", action="store_true",
                   help="torch.compile the trial's step (compiled during warm-up; the peers stay eager)")
    p.add_argument("--default-malloc", action="store_true",
                   help="leave glibc malloc at its defaults (a trial sets runners.device.keep_freed_memory)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    malloc = "default malloc"
    if not args.default_malloc and not is_original_code():
        # what a trial process does since issue 14; the peers run in the same process, so they gain too
        from runners.device import keep_freed_memory

        if keep_freed_memory():
            malloc = "malloc keeps freed memory"
    print(f"torch {torch.__version__}, {args.threads} thread(s), batch {BATCH} x seq {SEQ_LEN}, head_dim {HEAD_DIM}, "
          f"d_expert {D_EXPERT}, 1 shared expert, {malloc}{', trial compiled' if args.compiled else ''}; "
          f"median of {args.repeats} steps (round-robin)")
    print(f"{'':>12} {'median step ms':^26} {'trial / nanoGPT':^22} {'trial / dense':^15} "
          f"{'dispatched ops':^20} {'aten ops (profiler)':^20}")
    print(f"{'d  L C K N':>12} {'trial':>8} {'nanoGPT':>8} {'dense':>8} {'median':>8} {'cpu':>6} {'min':>6} {'median':>8} "
          f"{'min':>6} {'trial':>6} {'nanoGPT':>6} {'dense':>6} {'trial':>6} {'nanoGPT':>6} {'dense':>6} {'reads':>5}")
    rows: list[tuple[float, float, float, float]] = []
    for shape in (CONFIGS if args.configs == "all" else QUICK):
        cfg = trial_config(*shape)
        torch.manual_seed(0)
        batch = torch.randint(0, VOCAB, (BATCH, SEQ_LEN + 1))
        steps = {"trial": trial_step(cfg, args.compiled)[0], "nanogpt": peer_step(cfg)[0],
                 "dense": trial_step(dense_config(cfg))[0]}
        m = measure(steps, batch, args.repeats, args.warmup, frozenset({"trial"} if args.compiled else ()))
        t, q, d = m["trial"], m["nanogpt"], m["dense"]
        rows.append((t.wall_ms / q.wall_ms, t.min_ms / q.min_ms, t.wall_ms / d.wall_ms, t.min_ms / d.min_ms))
        print(f"{' '.join(map(str, shape)):>12} {t.wall_ms:8.1f} {q.wall_ms:8.1f} {d.wall_ms:8.1f} "
              f"{rows[-1][0]:8.2f} {t.cpu_ms / q.cpu_ms:6.2f} {rows[-1][1]:6.2f} {rows[-1][2]:8.2f} {rows[-1][3]:6.2f} "
              f"{t.dispatched:6d} {q.dispatched:6d} {d.dispatched:6d} {t.ops:6d} {q.ops:6d} {d.ops:6d} {t.syncs:5d}")
    for i, label in enumerate(("nanoGPT, medians", "nanoGPT, fastest steps", "dense, medians", "dense, fastest steps")):
        values = [row[i] for row in rows]
        print(f"ratio to {label:22s}: median over configs {statistics.median(values):.2f}, max {max(values):.2f}")
    print("goal: ratio to the nanoGPT peer <= 1.10")

if __name__ == "__main__":
    main()
