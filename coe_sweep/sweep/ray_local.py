"""How coe-sweep starts Ray, as plain data: a local Ray that nothing off this machine can reach, with token
authentication on; or a connection to an existing cluster. No ray import here (the call site applies it).

Ray 2.60 binds its gRPC servers (GCS, raylet, object manager, every worker's core worker, the driver) and
its agents (runtime-env agent, dashboard agent) to the node's IP address. `ray.init(_node_ip_address=
"127.0.0.1")` and `ray start --node-ip-address=127.0.0.1` do not give a loopback node: Ray rewrites a
localhost address to the machine's routable one (`resolve_ip_for_localhost`) unless its own switch for
local-only nodes is off, `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0` (the default on macOS and Windows, where Ray
keeps single-machine clusters on loopback). With that switch off and the node IP set to 127.0.0.1, every
listener of the local Ray is on loopback. Ray reads the switch once, when `ray` is imported, so the call
site also sets it for the driver's own `ray.init` (`LOCAL_ONLY_ATTR`); Ray's processes inherit it from the
environment, which holds it only while `ray.init` starts them (a `ray start` worker node refuses the
switch: a multi-node cluster cannot be kept on loopback, and nothing started later should inherit it).

Token authentication (Ray >= 2.52): every RPC and HTTP entry point demands a bearer token when
`RAY_AUTH_MODE=token`. For a new local cluster Ray turns it on by itself when RAY_AUTH_MODE is unset,
and generates a token into ~/.ray/auth_token if none is configured. coe-sweep leaves RAY_AUTH_MODE unset
(an explicit `RAY_AUTH_MODE=disabled` is respected, with a warning) and, unless the user configured a
token (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token), hands Ray a fresh random token for this
process in RAY_AUTH_TOKEN: nothing is written to the home directory and the token dies with the process.
A cluster given by `cluster.address` is secured by its operator (README: "Running on a Ray cluster").
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOOPBACK_IP = "127.0.0.1"
LOCAL_ONLY_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": a node IP of 127.0.0.1 stays loopback
LOCAL_ONLY_ATTR = ("ray._private.ray_constants", "ENABLE_RAY_CLUSTER")  # the same switch, as read at import
AUTH_MODE_ENV = "RAY_AUTH_MODE"
AUTH_TOKEN_ENV = "RAY_AUTH_TOKEN"
AUTH_TOKEN_PATH_ENV = "RAY_AUTH_TOKEN_PATH"
DEFAULT_TOKEN_FILE = Path(".ray") / "auth_token"  # under the home directory: Ray's own default
COMMON_ENV = {"RAY_USAGE_STATS_ENABLED": "0"}


@dataclass(frozen=True)
class RaySettings:
    """What to do around `ray.init(**init_kwargs)`: set `env` for the rest of the process; set `spawn_env` only
    while ray.init starts Ray's processes (they inherit it), then restore it, so that other processes this
    one starts later (a `ray start` worker node, which refuses the local-only switch) do not inherit it; for
    a local Ray, turn Ray's import-time cluster switch off in the driver too (`local_only`)."""

    init_kwargs: dict[str, Any]
    env: dict[str, str] = field(default_factory=dict)
    spawn_env: dict[str, str] = field(default_factory=dict)
    local_only: bool = False
    warnings: tuple[str, ...] = ()  # for the log


def token_configured(environ: Mapping[str, str], home: Path) -> bool:
    """True when the user gave Ray a token: RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or Ray's default file."""
    return bool(environ.get(AUTH_TOKEN_ENV) or environ.get(AUTH_TOKEN_PATH_ENV)) or (home / DEFAULT_TOKEN_FILE).is_file()


def local_ray(*, num_cpus: int, num_gpus: int | None, temp_dir: str, environ: Mapping[str, str],
              home: Path) -> RaySettings:
    """A single-machine Ray started by this process: every listener on 127.0.0.1, token authentication on."""
    env = dict(COMMON_ENV)
    warnings: list[str] = []
    mode = environ.get(AUTH_MODE_ENV)
    if mode is not None and mode.lower() != "token":
        warnings.append(f"{AUTH_MODE_ENV}={mode} is set: the local Ray runs without token authentication (its "
                        "listeners are still on 127.0.0.1 only); unset it to turn authentication back on")
    elif not token_configured(environ, home):
        env[AUTH_TOKEN_ENV] = secrets.token_hex(32)  # 256 bits, as `ray get-auth-token --generate` makes
    kwargs: dict[str, Any] = {"num_cpus": num_cpus, "num_gpus": num_gpus, "include_dashboard": False,
                              "dashboard_host": LOOPBACK_IP, "_temp_dir": temp_dir, "_node_ip_address": LOOPBACK_IP,
                              "log_to_driver": False, "configure_logging": False}
    return RaySettings(init_kwargs=kwargs, env=env, spawn_env={LOCAL_ONLY_ENV: "0"}, local_only=True,
                       warnings=tuple(warnings))


def cluster_ray(address: str) -> RaySettings:
    """An existing cluster: its listeners and token are its operator's (Ray cannot keep a multi-node cluster on
    loopback: a worker node refuses the local-only switch); the driver brings the cluster's token if it
    demands one (RAY_AUTH_MODE=token and RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token, set before
    the driver starts)."""
    return RaySettings(init_kwargs={"address": address, "log_to_driver": False, "configure_logging": False},
                       env=dict(COMMON_ENV))


def is_loopback(host: str) -> bool:
    """True for localhost, 127.0.0.0/8, ::1 and IPv4-mapped loopback (`::ffff:127.0.0.1`)."""
    if host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return bool(address.is_loopback or (mapped is not None and mapped.is_loopback))
