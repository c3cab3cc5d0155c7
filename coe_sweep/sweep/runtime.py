"""The Ray runtime of a sweep: start or join Ray, size the slots, signals, and Tune's logging.

A local Ray is started in a private temp dir with every listener on 127.0.0.1 and token authentication on
(coe_sweep.sweep.ray_local says how) and shut down at the end; an existing cluster is joined by address (and
left running; its operator secures it). SIGTERM is turned into KeyboardInterrupt while the sweep
runs, so `docker stop` stops it like Ctrl-C.
"""

from __future__ import annotations

import importlib
import logging
import math
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import ray

from coe_sweep.search.resources import TrialResources
from coe_sweep.spec.schema import SweepSpec
from coe_sweep.sweep.ray_local import LOCAL_ONLY_ATTR, RaySettings, cluster_ray, is_loopback, local_ray

log = logging.getLogger(__name__)

RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0",
           # the driver writes its own records; Tune's CSV/JSON/TensorBoard loggers are pure overhead here
           "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
           # intermediate reports carry val_loss only; failed trials' final reports carry no objectives
           "TUNE_DISABLE_STRICT_METRIC_CHECKING": "1",
           # the legacy console engine honours verbose=0 (the new one still prints a config box per budget)
           "RAY_AIR_NEW_OUTPUT": "0",
           # Ctrl-C stops the whole sweep: Tune's own SIGINT handler would end only the running experiment
           "TUNE_DISABLE_SIGINT_HANDLER": "1"}
ONE_LINE_LOGGERS = ("ray.tune.execution.experiment_state",)  # a failed state save: the reason, no traceback
QUIET_LOGGERS = ("ray.tune.analysis.experiment_analysis",  # warns for the result files we do not write
                 "ray._private.authentication.authentication_token_setup")  # "token authentication is enabled"


class ResourceError(RuntimeError):
    """The Ray cluster cannot fit one trial (nothing was trained)."""


class _OneLine(logging.Filter):
    """Folds a record's exception into one line: Tune logs a failed experiment-state save (disk full) with a
    full traceback, while the sweep's own message already says what happened and what to do."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            record.msg, record.args = f"{record.getMessage()}{record.exc_info[1]}", None
            record.exc_info, record.exc_text = None, None
        return True


def quiet_tune_logging() -> None:
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    for name in ONE_LINE_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _OneLine) for f in logger.filters):
            logger.addFilter(_OneLine())


@contextmanager
def ray_runtime(address: str | None, num_cpus: int, num_gpus: int | None = None) -> Iterator[str | None]:
    """Connect to `address`, or start a local Ray in a private temp dir with every listener on 127.0.0.1 and
    token authentication on (coe_sweep.sweep.ray_local); always shut down.

    Yields the local temp dir (None on an existing cluster): /tmp/coe-ray-<driver pid>-XXXX (short: Ray's
    socket paths must fit 107 bytes), so a test that kill -9s a driver can find and reap the Ray processes
    that outlive it.
    """
    for key, value in RAY_ENV.items():
        os.environ.setdefault(key, value)
    temp_dir = None
    if address:
        settings = cluster_ray(address)
    else:
        temp_dir = tempfile.mkdtemp(prefix=f"coe-ray-{os.getpid()}-", dir="/tmp")
        settings = local_ray(num_cpus=num_cpus, num_gpus=num_gpus, temp_dir=temp_dir, environ=os.environ,
                             home=Path.home())
    os.environ.update(settings.env)
    for warning in settings.warnings:
        log.warning("%s", warning)
    context = _ray_init(settings)
    try:
        node_ip = str(context.address_info.get("node_ip_address", ""))
        if not address and not is_loopback(node_ip):  # fail closed if a Ray upgrade changes the switch
            raise ResourceError(f"the local Ray started on {node_ip}, not on 127.0.0.1; refusing to run a sweep "
                                "that the network can reach")
        yield temp_dir
    finally:
        ray.shutdown()
        if temp_dir:  # logs of a clean run are not kept; a crashed run keeps nothing useful either
            shutil.rmtree(temp_dir, ignore_errors=True)


def _ray_init(settings: RaySettings) -> Any:
    """`ray.init` with `settings.spawn_env` set while it starts Ray's processes, and Ray's local-only switch off
    in this process too: Ray reads it when `ray` is imported, before ray_runtime could set
    RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER (which Ray's own processes inherit)."""
    module = importlib.import_module(LOCAL_ONLY_ATTR[0])
    previous = getattr(module, LOCAL_ONLY_ATTR[1])
    saved_env = {key: os.environ.get(key) for key in settings.spawn_env}
    os.environ.update(settings.spawn_env)
    if settings.local_only:
        setattr(module, LOCAL_ONLY_ATTR[1], False)
    try:
        return ray.init(**settings.init_kwargs)
    finally:
        setattr(module, LOCAL_ONLY_ATTR[1], previous)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def signals_stop(on_signal: Callable[[int], None]) -> Iterator[None]:
    """Ctrl-C (SIGINT) and SIGTERM (`docker stop`, `kill`) stop the sweep: `on_signal(signum)` records it (the
    stop policy Tune polls), then KeyboardInterrupt is raised. Installed after `ray.init`, whose own SIGTERM
    handler would otherwise exit the driver on the spot, leaving trials RUNNING in MLflow."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        on_signal(signum)
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {signum: signal.signal(signum, interrupt) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def local_cpus(spec: SweepSpec) -> int:
    """CPUs of a local Ray: cluster.num_cpus, else enough for max_concurrent trials, else every core."""
    c = spec.cluster
    if c.num_cpus:
        return int(c.num_cpus)
    if c.max_concurrent:
        return max(1, math.ceil(c.max_concurrent * float(c.cpus_per_trial)))
    return os.cpu_count() or 1


def max_concurrent(spec: SweepSpec, resources: TrialResources) -> int:
    """cluster.max_concurrent, else as many trials as the Ray cluster's CPUs (and GPUs) fit."""
    return int(spec.cluster.max_concurrent) if spec.cluster.max_concurrent else cluster_slots(resources)


def cluster_slots(resources: TrialResources) -> int:
    """How many trials the Ray cluster's CPUs (and GPUs) fit at once (at least 1)."""
    have = ray.cluster_resources()
    fit = have.get("CPU", 1) / resources.cpus_per_trial
    if resources.gpus_per_trial:
        fit = min(fit, have.get("GPU", 0) / resources.gpus_per_trial)
    return max(1, int(fit))


def check_resources(spec: SweepSpec, resources: TrialResources) -> None:
    """ResourceError when the Ray cluster cannot fit one trial (all of its data-parallel workers)."""
    have = ray.cluster_resources()
    need_gpu = resources.gpus_per_trial
    if need_gpu > have.get("GPU", 0):
        raise ResourceError(f"cluster.gpus_per_trial: found {spec.cluster.gpus_per_trial} ({need_gpu:g} GPU(s) per "
                            f"trial); the Ray cluster has {have.get('GPU', 0)} GPU(s); expected <= that (or 0 for "
                            "CPU trials)")
    if float(spec.cluster.cpus_per_trial) > have.get("CPU", 0):
        raise ResourceError(f"cluster.cpus_per_trial: found {spec.cluster.cpus_per_trial}; the Ray cluster "
                            f"has {have.get('CPU', 0)} CPU(s); expected <= that")
