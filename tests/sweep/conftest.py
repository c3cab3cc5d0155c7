"""Fixtures of the orchestration tests: tiny specs in tmp dirs, one Ray head per module where reused."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from sweep_helpers import RayNode  # noqa: E402


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayNode]:
    """A Ray head (2 CPUs, 127.0.0.1) shared by a module's sweeps via cluster.address; killed by PID."""
    node = RayNode(tmp_path_factory.mktemp("ray-head"), num_cpus=2)
    try:
        yield node
    finally:
        node.stop()
