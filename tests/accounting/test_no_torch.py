"""coe_sweep.accounting is pure Python: importing and using it must not import torch."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys
import coe_sweep.accounting as acc
from coe_sweep.model.config import ModelConfig
cfg = ModelConfig(iterations=2)
acc.param_counts(cfg); acc.train_flops_per_token(cfg, 128); acc.memory_estimate(cfg, 4, 128)
heavy = sorted(m for m in ("torch", "ray", "optuna", "mlflow", "fastapi") if m in sys.modules)
print(",".join(heavy))
"""


def test_accounting_does_not_import_torch() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"accounting imported: {out.stdout.strip()}"
