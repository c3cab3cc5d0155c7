"""The contract between the sweep and the runners: what one trial trains and what it reports.

Pure dataclasses (no torch, no Ray, no MLflow). Config flows one way:
SweepSpec -> trial config -> RunSpec(model, train, data, horizon) -> runners.train -> RunResult.
The horizon is chosen by explicit precedence: steps > tokens > flops
(tokens = flops / train_flops_per_token(model, seq_len), see coe_sweep.accounting).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from coe_sweep.model.config import ModelConfig

Schedule = Literal["constant", "cosine", "linear"]
Device = Literal["auto", "cpu", "cuda"]
Dtype = Literal["auto", "fp32", "bf16"]
Compile = Literal["off", "on", "auto"]
TrialStatus = Literal["ok", "diverged", "oom", "failed", "pruned"]  # pruned: stopped early by ASHA (sweeps only)


@dataclass(frozen=True)
class DataConfig:
    # builtin:arithmetic | files:PATH_OR_GLOB | hf:NAME[:CONFIG][@SPLIT]
    source: str = "builtin:arithmetic"
    text_template: str = "query : {question} response : {answer}"
    tokenizer: str = "byte"  # byte | bpe:VOCAB (trained with `tokenizers` on the train split, cached)
    val_tokens: int = 16_384  # held-out tokens, fixed by seed: identical for every trial of a data config
    num_examples: int = 20_000  # builtin generator size (train + val)
    seed: int = 0
    cache_dir: str | None = None  # None: ~/.cache/coe-sweep


@dataclass(frozen=True)
class TrainConfig:
    batch_size: int = 16
    seq_len: int = 128
    lr: float = 3e-3
    min_lr_ratio: float = 0.1  # cosine/linear floor as a fraction of lr
    warmup_steps: int = 10
    schedule: Schedule = "constant"  # the paper: warmup then constant
    beta1: float = 0.9
    beta2: float = 0.95
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    seed: int = 0
    eval_interval: int = 50  # steps between validation passes (and one at the end)
    eval_batches: int | None = None  # None: the whole validation set
    device: Device = "auto"
    dtype: Dtype = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU
    threads: int | None = None  # CPU threads; None: the CPUs this trial was given
    compile: Compile = "auto"  # torch.compile the step: auto = when the horizon pays back the compile (runners/step.py)


@dataclass(frozen=True)
class Horizon:
    """How long to train. Precedence: steps > tokens > flops (first one set wins)."""

    steps: int | None = None
    tokens: int | None = None
    flops: float | None = None

    def __post_init__(self) -> None:
        if self.steps is None and self.tokens is None and self.flops is None:
            raise ValueError("Horizon: set one of steps, tokens or flops")
        for name in ("steps", "tokens", "flops"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"Horizon.{name}={value!r} is invalid: expected a number > 0")


@dataclass(frozen=True)
class RunSpec:
    model: ModelConfig
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)
    horizon: Horizon = field(default_factory=lambda: Horizon(steps=100))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunSpec:
        return cls(model=ModelConfig.from_dict(d["model"]), train=TrainConfig(**d.get("train", {})),
                   data=DataConfig(**d.get("data", {})), horizon=Horizon(**d.get("horizon", {"steps": 100})))


@dataclass
class RunResult:
    """What one trial reports. Curves are lists of (step, value)."""

    status: TrialStatus
    reason: str | None = None  # why status != ok (exception text, 'nan loss at step 12', ...)
    steps: int = 0
    tokens: int = 0  # tokens trained on
    flops: float = 0.0  # analytic train FLOPs actually spent = train_flops_per_token * tokens
    train_flops_per_token: float = 0.0
    params_total: int = 0
    params_active: int = 0
    final_train_loss: float | None = None
    final_val_loss: float | None = None
    train_curve: list[tuple[int, float]] = field(default_factory=list)
    val_curve: list[tuple[int, float]] = field(default_factory=list)
    peak_memory_bytes: int | None = None  # measured peak (cuda max_memory_allocated / CPU live-tensor peak)
    allocated_after_step_bytes: int | None = None  # the paper's figure: memory_allocated after a step
    estimated_memory_bytes: int | None = None  # coe_sweep.accounting estimate, for comparison
    tokens_per_s: float | None = None
    wall_s: float = 0.0
    mfu: float | None = None  # model-FLOPs utilisation vs the device peak (CUDA only)
    device: str = "cpu"
    routing: dict[str, Any] = field(default_factory=dict)  # summary of routing statistics
    simulated: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunResult:
        d = dict(d)
        d["train_curve"] = [tuple(p) for p in d.get("train_curve", [])]
        d["val_curve"] = [tuple(p) for p in d.get("val_curve", [])]
        return cls(**d)


def config_hash(config: dict[str, Any], length: int = 16) -> str:
    """Deterministic hash of a (JSON-able) config: the trial key that makes resume idempotent."""
    blob = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


BYTE_VOCAB_SIZE = 258  # 256 byte values + BOS + EOS


def tokenizer_vocab_size(tokenizer: str) -> int:
    """Vocabulary size a tokenizer name implies: 'byte' -> 258, 'bpe:N' -> N.

    Torch-free so that accounting and `coe-sweep plan` know the LM-head size without loading data.
    """
    if tokenizer == "byte":
        return BYTE_VOCAB_SIZE
    if tokenizer.startswith("bpe:"):
        size = tokenizer.removeprefix("bpe:")
        if size.isdigit() and 260 <= int(size) <= 1_000_000:
            return int(size)
    raise ValueError(f"tokenizer={tokenizer!r} is invalid: expected 'byte' or 'bpe:N' with 260 <= N <= 1000000")
