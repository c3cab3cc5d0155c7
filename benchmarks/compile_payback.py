"""Compile payback: what `torch.compile` of a trial's step costs and gains on this CPU (1 torch thread),
the numbers behind runners/step.py's COMPILE_COST and the `train.compile: auto` rule.

For each iso_flops-sized config (the same as benchmarks/step_overhead.py) it builds two identical
TrainSteps, compiles one, and prints: the compile seconds (the first compiled step minus a median
eager step), the median eager and compiled step ms (round-robin, process CPU time is printed
beside wall time), the speedup, and the break-even horizon: the steps after which the saving
pays back the compile, compile_s / (eager_s - compiled_s). The inductor cache starts empty (a fresh
TORCHINDUCTOR_CACHE_DIR), as for a trial of a new shape.

    python benchmarks/compile_payback.py [--configs all|quick] [--repeats 15]

Measured (issue 14; 2-core CPU shared with other jobs, load average 3-8; the trial's malloc settings):
      d  L C K N compile s  eager ms  comp ms speedup cpu spdup break-even steps
      16 1 1 1 4      41.3      23.7     19.3    1.23      1.31             9306   (first: warms inductor up)
      16 2 2 2 8      17.6      28.0     24.1    1.16      1.17             4504
      32 1 3 1 4      19.5      21.7     18.8    1.15      1.15             6735
      32 2 1 2 8       8.4      38.0     32.5    1.17      1.19             1523
      48 2 2 1 8      22.2      51.8     43.8    1.18      1.18             2760
      64 1 2 2 4      18.2      42.9     38.3    1.12      1.21             3943
      64 2 1 2 8       9.7      58.7     52.3    1.12      1.13             1513
      64 2 3 1 8      16.9      79.8     72.1    1.11      1.14             2189
runners/step.py's COMPILE_COST takes 25 s and 1.15 from these.
"""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", tempfile.mkdtemp(prefix="coe_sweep_inductor_"))

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402

import torch  # noqa: E402
from step_overhead import BATCH, CONFIGS, QUICK, SEQ_LEN, VOCAB, trial_config  # noqa: E402

from coe_sweep.model.lm import CoELM  # noqa: E402
from coe_sweep.trial import TrainConfig  # noqa: E402
from runners.device import keep_freed_memory, resolve_device  # noqa: E402
from runners.step import TrainStep  # noqa: E402


def _stepper(shape: tuple[int, ...]) -> TrainStep:
    tc = TrainConfig(batch_size=BATCH, seq_len=SEQ_LEN, lr=3e-3, device="cpu", threads=1, compile="off")
    torch.manual_seed(0)
    return TrainStep(CoELM(trial_config(*shape)), tc, total_steps=10_000, device=resolve_device(replace(tc)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", choices=("all", "quick"), default="all")
    p.add_argument("--repeats", type=int, default=15)
    args = p.parse_args()
    torch.set_num_threads(1)
    keep_freed_memory()  # as a trial process does
    print(f"torch {torch.__version__}, 1 thread, batch {BATCH} x seq {SEQ_LEN}, inductor cache "
          f"{os.environ['TORCHINDUCTOR_CACHE_DIR']}; medians of {args.repeats} steps")
    print(f"{'d  L C K N':>12} {'compile s':>9} {'eager ms':>9} {'comp ms':>8} {'speedup':>7} {'cpu spdup':>9} "
          f"{'break-even steps':>16}")
    for shape in (CONFIGS if args.configs == "all" else QUICK):
        batch = torch.randint(0, VOCAB, (BATCH, SEQ_LEN + 1), generator=torch.Generator().manual_seed(0))
        eager, compiled = _stepper(shape), _stepper(shape)
        for _ in range(3):
            eager.run(batch)
            compiled.run(batch)
        t0 = time.perf_counter()
        eager.run(batch)
        eager_once_s = time.perf_counter() - t0
        torch._dynamo.reset()
        compiled.compile()
        t0 = time.perf_counter()
        compiled.run(batch)
        compile_s = time.perf_counter() - t0 - eager_once_s
        walls: dict[str, list[float]] = {"eager": [], "compiled": []}
        cpus: dict[str, list[float]] = {"eager": [], "compiled": []}
        for _ in range(args.repeats):
            for name, stepper in (("eager", eager), ("compiled", compiled)):
                w0, c0 = time.perf_counter(), time.process_time()
                stepper.run(batch)
                cpus[name].append(time.process_time() - c0)
                walls[name].append(time.perf_counter() - w0)
        e_s, c_s = statistics.median(walls["eager"]), statistics.median(walls["compiled"])
        cpu_speedup = statistics.median(cpus["eager"]) / statistics.median(cpus["compiled"])
        break_even = f"{compile_s / (e_s - c_s):16.0f}" if e_s > c_s else f"{'never':>16}"
        print(f"{' '.join(map(str, shape)):>12} {compile_s:9.1f} {e_s * 1e3:9.1f} {c_s * 1e3:8.1f} {e_s / c_s:7.2f} "
              f"{cpu_speedup:9.2f} {break_even}")


if __name__ == "__main__":
    main()
