"""Accounting tests run torch with one thread (the machine is shared)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _one_torch_thread() -> None:
    import torch

    torch.set_num_threads(1)
