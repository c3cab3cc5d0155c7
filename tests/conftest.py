"""Suite-wide settings: offline hubs, no telemetry, Ray with token authentication (one random token for the
session, set before anything imports ray, so that in-process drivers, subprocess launches and `ray start`
test clusters share it); GPU tests skipped without CUDA."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest

for _key, _value in {
    "RAY_AUTH_MODE": "token",
    "RAY_AUTH_TOKEN": secrets.token_hex(32),
    "RAY_USAGE_STATS_ENABLED": "0",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}.items():
    os.environ.setdefault(_key, _value)

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def gsm8k_dir() -> Path:
    """Real GSM8K parquet files from ../shared (skips where the checkout has no shared/ beside it)."""
    path = SHARED_DATA / "gsm8k"
    if not (path / "train.parquet").exists():
        pytest.skip("../shared/data/gsm8k not present beside the checkout")
    return path


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if not has_cuda:
        skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip_gpu)
