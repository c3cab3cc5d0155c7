"""Data-parallel trial vs one process on this CPU: the same RunSpec (global batch, seed) trained by one
process and by 2 gloo workers (runners.distributed.train_on_local_processes, no Ray), side by side.

Prints per config and round: the step time of each (from the trial's own timed steps), their ratio
(2 workers / 1 worker: < 1 means data parallelism pays), and the largest |loss difference| over the train and
validation curves; then medians. On this 2-core machine with 1 torch thread per worker, the two workers
get a core each, so the ideal ratio is 0.5 plus the all-reduce.

    python benchmarks/data_parallel_step.py [--rounds 3] [--steps 30]

Measured (issue 14; the 2-core machine shared with other jobs, so rounds vary 2-3x):
    tiny d32 L1 E4 C2    (batch 8 x 64):  1 worker 8-16 ms, 2 workers 15-30 ms, median ratio 2.17
    small d128 L2 E8 C2  (batch 16 x 64): 1 worker 147-206 ms, 2 workers 148-239 ms, median ratio 0.91
    max |loss difference| 9.5e-7 / 4.8e-7 (one fp32 ulp at the loss): the curves agree.
A tiny trial loses to the all-reduce and the second process; a 1.3M-parameter one starts to gain. The
Ray Train route adds ~15 s per trial (worker processes, process group) on top: only worth it for trials
of minutes.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from typing import Any

from coe_sweep.model.config import ModelConfig
from coe_sweep.trial import DataConfig, Horizon, RunSpec, TrainConfig
from runners.distributed import train_on_local_processes
from runners.train import train

CONFIGS: dict[str, dict[str, Any]] = {  # name -> (model fields, global batch)
    "tiny d32 L1 E4 C2": {"model": dict(d_model=32, n_layers=1, n_heads=2, d_expert=16, n_experts=4, top_k=2,
                                        iterations=2), "batch": 8},
    "small d128 L2 E8 C2": {"model": dict(d_model=128, n_layers=2, head_dim=16, d_expert=128, n_experts=8,
                                          top_k=2, iterations=2), "batch": 16},
}
SEQ_LEN = 64


def _spec(fields: dict[str, Any], batch: int, steps: int, cache: str) -> RunSpec:
    return RunSpec(model=ModelConfig(**fields, max_seq_len=SEQ_LEN),
                   train=TrainConfig(batch_size=batch, seq_len=SEQ_LEN, lr=3e-3, warmup_steps=2,
                                     eval_interval=max(1, steps // 2), eval_batches=2, threads=1, device="cpu",
                                     compile="off"),
                   data=DataConfig(num_examples=2000, val_tokens=4096, cache_dir=cache), horizon=Horizon(steps=steps))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    cache = tempfile.mkdtemp(prefix="coe_sweep_dp_bench_")
    print(f"{'config':22} {'round':>5} {'1 worker ms':>12} {'2 workers ms':>13} {'ratio':>6} {'max |dloss|':>12}")
    for name, cfg in CONFIGS.items():
        spec = _spec(cfg["model"], cfg["batch"], args.steps, cache)
        ratios, diffs = [], []
        for r in range(args.rounds):
            one = train(spec)
            two = train_on_local_processes(spec, 2)[0]
            assert one.tokens_per_s and two.tokens_per_s
            tokens_per_step = spec.train.batch_size * SEQ_LEN
            one_ms, two_ms = 1e3 * tokens_per_step / one.tokens_per_s, 1e3 * tokens_per_step / two.tokens_per_s
            curves = zip(one.train_curve + one.val_curve, two.train_curve + two.val_curve, strict=True)
            diff = max(abs(a - b) for (_, a), (_, b) in curves)
            ratios.append(two_ms / one_ms)
            diffs.append(diff)
            print(f"{name:22} {r:5d} {one_ms:12.2f} {two_ms:13.2f} {two_ms / one_ms:6.2f} {diff:12.2e}")
        print(f"{name:22} median step ratio (2 workers / 1) {statistics.median(ratios):.2f}, "
              f"max |dloss| {max(diffs):.2e}")


if __name__ == "__main__":
    main()
