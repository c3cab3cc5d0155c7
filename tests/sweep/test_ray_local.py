"""A local sweep opens nothing to the network: the settings of coe_sweep.sweep.ray_local, and a REAL local
sweep (`coe-sweep launch` in a subprocess) whose every listening socket must be on loopback, whose Ray
refuses a client without the token, and which writes no token into the home directory."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sweep_helpers import children_of, launch_cli, pgid_members, pids_matching, reap, wait_for, write_spec
from sweep_helpers import test_env as subprocess_env

from coe_sweep.sweep.ray_local import (
    AUTH_TOKEN_ENV,
    LOCAL_ONLY_ENV,
    LOOPBACK_IP,
    cluster_ray,
    is_loopback,
    local_ray,
)


def test_local_ray_is_loopback_with_a_fresh_token(tmp_path: Path) -> None:
    settings = local_ray(num_cpus=2, num_gpus=None, temp_dir="/tmp/x", environ={}, home=tmp_path)
    assert settings.local_only and settings.spawn_env == {LOCAL_ONLY_ENV: "0"} and LOCAL_ONLY_ENV not in settings.env
    assert settings.init_kwargs["_node_ip_address"] == LOOPBACK_IP and settings.init_kwargs["include_dashboard"] is False
    assert re.fullmatch(r"[0-9a-f]{64}", settings.env[AUTH_TOKEN_ENV]) and not settings.warnings
    again = local_ray(num_cpus=2, num_gpus=None, temp_dir="/tmp/x", environ={}, home=tmp_path)
    assert again.env[AUTH_TOKEN_ENV] != settings.env[AUTH_TOKEN_ENV]  # random, never a constant


@pytest.mark.parametrize("environ, token_file", [({"RAY_AUTH_TOKEN": "t" * 64}, False),
                                                 ({"RAY_AUTH_TOKEN_PATH": "/some/file"}, False),
                                                 ({"RAY_AUTH_MODE": "token"}, True)])
def test_a_token_the_user_configured_is_kept(tmp_path: Path, environ: dict[str, str], token_file: bool) -> None:
    if token_file:
        (tmp_path / ".ray").mkdir()
        (tmp_path / ".ray" / "auth_token").write_text("x" * 64)
    settings = local_ray(num_cpus=1, num_gpus=None, temp_dir="/tmp/x", environ=environ, home=tmp_path)
    assert AUTH_TOKEN_ENV not in settings.env and not settings.warnings


def test_explicitly_disabled_auth_is_respected_and_said(tmp_path: Path) -> None:
    settings = local_ray(num_cpus=1, num_gpus=None, temp_dir="/tmp/x", environ={"RAY_AUTH_MODE": "disabled"},
                         home=tmp_path)
    assert AUTH_TOKEN_ENV not in settings.env and settings.spawn_env == {LOCAL_ONLY_ENV: "0"}
    assert len(settings.warnings) == 1 and "RAY_AUTH_MODE=disabled" in settings.warnings[0]


@pytest.mark.parametrize("address", ["127.0.0.1:6379", "ray://head.example.org:10001", "auto"])
def test_a_cluster_is_joined_as_it_is(address: str) -> None:
    settings = cluster_ray(address)  # its listeners and token are its operator's: nothing switched here
    assert not settings.local_only and not settings.spawn_env and AUTH_TOKEN_ENV not in settings.env
    assert settings.init_kwargs["address"] == address


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("127.3.4.5", True), ("::1", True),
                                            ("[::1]", True), ("::ffff:127.0.0.1", True), ("localhost", True),
                                            ("0.0.0.0", False), ("::", False), ("*", False), ("192.0.2.2", False),
                                            ("::ffff:10.0.0.1", False), ("example.org", False)])
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def _tree(root: int) -> set[int]:
    """The launch's processes: its group, Ray's processes (found by the private temp dir, in their own
    groups) and every descendant of those."""
    pids = pgid_members(root) | pids_matching(f"coe-ray-{root}-")
    for pid in list(pids):
        try:
            pids |= pgid_members(os.getpgid(pid))
        except OSError:
            pass
    while (more := children_of(pids) - pids):
        pids |= more
    return pids


def _listeners(pids: set[int]) -> list[tuple[str, str]]:
    """(local address, process name) of every listening TCP socket and bound UDP socket of `pids` (ss -p)."""
    out = subprocess.run(["ss", "-H", "-l", "-t", "-u", "-n", "-p"], capture_output=True, text=True, check=True).stdout
    found = []
    for line in out.splitlines():
        owners = {int(p) for p in re.findall(r"pid=(\d+)", line)}
        if owners & pids:
            fields = line.split()
            found.append((fields[4], ",".join(re.findall(r'\("([^"]+)"', line))))
    return found


def _host(address: str) -> str:
    return address.rsplit(":", 1)[0].strip("[]")


@pytest.mark.slow
def test_a_real_local_sweep_listens_on_loopback_only_and_demands_the_token(tmp_path: Path) -> None:
    if subprocess.run(["ss", "-V"], capture_output=True).returncode != 0:
        pytest.skip("needs ss (iproute2)")
    spec = write_spec(tmp_path, "net", trials=3, flops=[2e10], max_concurrent=2)
    env = {k: v for k, v in subprocess_env().items() if k not in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
    env["HOME"] = str(tmp_path / "home")  # Ray's own token default lives here: it must stay empty
    driver = launch_cli(spec, "--simulate", "--simulate-trial-s", "15", cwd=tmp_path, log=tmp_path / "launch.log",
                        env=env)
    try:
        wait_for(lambda: any('"start"' in p.read_text() for p in (tmp_path / "sweeps").glob("*/journal.jsonl")),
                 300, "the first trial to start")
        listeners = wait_for(lambda: [x for x in _listeners(_tree(driver.pid)) if "gcs_server" in x[1]]
                             and _listeners(_tree(driver.pid)), 60, "Ray's listeners")
        names = {name for _, name in listeners}
        assert {"gcs_server", "raylet"} <= names, listeners
        assert len(listeners) >= 4, listeners  # GCS, raylet (node + object manager), the driver, the workers
        exposed = [(address, name) for address, name in listeners if not is_loopback(_host(address))]
        assert not exposed, f"listening beyond loopback: {exposed}"
        gcs = next(address for address, name in listeners if name == "gcs_server")
        client_env = {k: v for k, v in env.items() if k != "RAY_AUTH_TOKEN"} | {
            "RAY_AUTH_MODE": "disabled", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
        try:
            probe = subprocess.run([sys.executable, "-c", f"import ray; ray.init(address='{LOOPBACK_IP}:"
                                    f"{gcs.rsplit(':', 1)[1]}'); print('CONNECTED')"], env=client_env,
                                   capture_output=True, text=True, timeout=25)
            out = probe.stdout + probe.stderr
        except subprocess.TimeoutExpired as exc:  # the client keeps retrying: its log says why
            out = (exc.stdout or b"").decode(errors="replace") + (exc.stderr or b"").decode(errors="replace")
        assert "CONNECTED" not in out and "InvalidAuthToken" in out, out[-2000:]
        assert driver.wait(timeout=600) == 0, (tmp_path / "launch.log").read_text()[-3000:]
    finally:
        reap({driver.pid}, marker=f"coe-ray-{driver.pid}-")
    assert not (tmp_path / "home" / ".ray" / "auth_token").exists()
