"""Model-test fixtures: one torch thread (the machine is shared), a fixed seed per test."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch


@pytest.fixture(autouse=True)
def _torch_setup() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)


def _probe_loss(out: torch.Tensor, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (out * torch.randn(out.shape, generator=g, dtype=out.dtype).to(out.device)).sum()


@pytest.fixture
def probe_loss() -> Callable[..., torch.Tensor]:
    """A scalar whose gradient is a dense random tensor (grouped_mm rejects stride-0 grads, so tests
    never backprop `.sum()` straight out of it)."""
    return _probe_loss
