"""coe_sweep.search.resources and the cluster fields behind it: data-parallel workers per trial (spec rules
with file:line errors) and `gpus_per_trial: auto` derived from the memory estimate (GPU memory given as a
number: there is no GPU here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from coe_sweep.search.resources import (
    AUTO_HEADROOM,
    CUDA_CONTEXT_BYTES,
    MAX_TRIALS_PER_GPU,
    auto_gpus_per_trial,
    largest_trial_bytes,
    trial_resources,
)
from coe_sweep.search.sweep_plan import build_plan
from coe_sweep.spec import SpecError, load_spec
from tests.sweep.sweep_helpers import write_spec

GIB = 2**30


def _spec(tmp_path: Path, cluster: dict[str, Any], **kw: Any) -> Path:
    path = write_spec(tmp_path, trials=2, **kw)
    text = path.read_text()
    for key, value in cluster.items():
        text = text.replace("cluster:\n", f"cluster:\n  {key}: {value}\n", 1)
    path.write_text(text)
    return path


def test_workers_from_workers_per_trial_or_whole_gpus(tmp_path: Path) -> None:
    res = trial_resources(load_spec(_spec(tmp_path, {"workers_per_trial": 2}, train={"batch_size": 8})))
    assert (res.workers, res.cpus_per_worker, res.gpus_per_worker, res.data_parallel) == (2, 0.5, 0.0, True)
    res = trial_resources(load_spec(_spec(tmp_path, {"gpus_per_trial": 4}, train={"batch_size": 8})))
    assert (res.workers, res.gpus_per_worker, res.gpus_per_trial) == (4, 1.0, 4.0)
    res = trial_resources(load_spec(_spec(tmp_path, {"gpus_per_trial": 0.5})))
    assert (res.workers, res.gpus_per_worker, res.data_parallel) == (1, 0.5, False)


@pytest.mark.parametrize(("cluster", "train", "fragments"), [
    ({"workers_per_trial": 3}, {}, ["train.batch_size", "found 4", "multiple of 3"]),
    ({"gpus_per_trial": 2.5}, {}, ["cluster.gpus_per_trial", "whole number"]),
    ({"gpus_per_trial": 4, "workers_per_trial": 2}, {"batch_size": 8}, ["cluster.workers_per_trial", "1 or 4"]),
    ({"gpus_per_trial": "auto", "workers_per_trial": 2}, {}, ["cluster.gpus_per_trial", "whole GPUs"]),
    ({"gpus_per_trial": 65}, {}, ["cluster.gpus_per_trial", "[0, 64]"]),
    ({"workers_per_trial": 0}, {}, ["cluster.workers_per_trial", "greater than or equal to 1"]),
])
def test_bad_worker_settings_name_the_field_and_line(tmp_path: Path, cluster: dict[str, Any], train: dict[str, Any],
                                                     fragments: list[str]) -> None:
    path = _spec(tmp_path, cluster, train=train)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    text = str(info.value)
    assert f"{path.name}:" in text and all(f in text for f in fragments), text


def test_sampled_batch_sizes_must_divide_too(tmp_path: Path) -> None:
    path = _spec(tmp_path, {"workers_per_trial": 2},
                 space={"train.batch_size": {"choice": [4, 6, 7]}, "d_model": {"choice": [32]}})
    with pytest.raises(SpecError) as info:
        load_spec(path)
    text = str(info.value)
    assert "space.train.batch_size.choice[2]: found 7; expected a multiple of 2" in text, text
    assert "choice[0]" not in text and "choice[1]" not in text


def test_auto_fraction_follows_the_largest_estimate() -> None:
    per_trial = int(10 * GIB)
    fraction, n = auto_gpus_per_trial(per_trial, 80 * GIB)
    expected = int(80 * GIB // (per_trial * AUTO_HEADROOM + CUDA_CONTEXT_BYTES))  # 6 trials of 12.5 + 0.5 GiB
    assert (n, fraction) == (expected, 1 / expected) and n == 6
    assert auto_gpus_per_trial(10**6, 80 * GIB) == (1 / MAX_TRIALS_PER_GPU, MAX_TRIALS_PER_GPU)  # capped
    assert auto_gpus_per_trial(100 * GIB, 80 * GIB) == (1.0, 1)  # too big to share: a whole GPU
    assert auto_gpus_per_trial(per_trial, None) == (0.0, None) == auto_gpus_per_trial(per_trial, 0)  # no GPU


def test_auto_in_the_spec_and_the_plan(tmp_path: Path) -> None:
    spec = load_spec(_spec(tmp_path, {"gpus_per_trial": "auto"}))
    largest = largest_trial_bytes(spec)
    assert largest > 0
    gpu_bytes = int(3.5 * (largest * AUTO_HEADROOM + CUDA_CONTEXT_BYTES))  # room for 3 of the largest trial
    res = trial_resources(spec, gpu_bytes)
    assert (res.trials_per_gpu, res.gpus_per_trial) == (3, pytest.approx(1 / 3))
    assert trial_resources(spec).gpus_per_trial == 0.0  # no GPU here: auto means 0
    model = build_plan(spec, gpu_memory_bytes=gpu_bytes)["throughput_model"]
    assert (model["gpus_per_trial_spec"], model["trials_per_gpu"]) == ("auto", 3)
    assert model["gpus_per_trial"] == pytest.approx(1 / 3)
    (tmp_path / "p").mkdir()
    pinned = load_spec(_spec(tmp_path / "p", {"gpus_per_trial": "auto", "gpu_memory": gpu_bytes}))
    assert trial_resources(pinned).trials_per_gpu == 3  # cluster.gpu_memory wins over detection
