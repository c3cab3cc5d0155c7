"""docker-compose.yml: the GPU-cluster deployment is complete, private by default and valid.

No Docker engine runs here, so the file is checked structurally and validated with Debian's
`docker-compose config` (which resolves interpolation, profiles and the deploy section).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def test_all_services_present(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) >= {"postgres", "mlflow", "ray-head", "ray-worker", "dashboard", "launch"}


def test_mlflow_uses_postgres_and_has_healthcheck(compose: dict[str, Any]) -> None:
    mlflow = compose["services"]["mlflow"]
    command = " ".join(mlflow["command"]) if isinstance(mlflow["command"], list) else mlflow["command"]
    assert "mlflow server" in command
    assert "postgresql+psycopg2://" in command and "@postgres:5432/" in command
    assert "/health" in " ".join(mlflow["healthcheck"]["test"])
    assert mlflow["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert any(v.startswith("mlartifacts:") for v in mlflow["volumes"])


def test_postgres_data_on_named_volume(compose: dict[str, Any]) -> None:
    pg = compose["services"]["postgres"]
    assert "pgdata:/var/lib/postgresql/data" in pg["volumes"]
    assert {"pgdata", "mlartifacts", "sweeps"} <= set(compose["volumes"])
    assert "ports" not in pg, "postgres must stay on the compose network"


def test_ray_ports_stay_on_compose_network(compose: dict[str, Any]) -> None:
    head = compose["services"]["ray-head"]
    assert "ports" not in head
    assert {"6379", "10001"} <= set(head["expose"])
    assert "--include-dashboard=false" in head["command"]


def test_ray_demands_a_token_from_every_client(compose: dict[str, Any]) -> None:
    for name in ("ray-head", "ray-worker", "launch", "dashboard"):
        env = compose["services"][name]["environment"]
        assert env["RAY_AUTH_MODE"] == "token" and env["RAY_AUTH_TOKEN"].startswith("${RAY_AUTH_TOKEN:?"), name
    assert "RAY_AUTH_TOKEN=" in (ROOT / ".env.example").read_text()


def test_gpu_workers_reserve_nvidia_devices_and_scale(compose: dict[str, Any]) -> None:
    worker = compose["services"]["ray-worker"]
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert "container_name" not in worker, "a fixed name would break --scale ray-worker=N"
    assert "ports" not in worker
    assert "ray-head:6379" in worker["command"]
    assert worker["build"]["args"]["TORCH_VARIANT"] == "cuda"


def test_published_ports_bind_loopback_only(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_launch_targets_cluster_and_tracking_server(compose: dict[str, Any]) -> None:
    launch = compose["services"]["launch"]
    assert "coe-sweep launch" in launch["command"]
    assert "--address ray-head:6379" in launch["command"]
    assert "--tracking-uri http://mlflow:5000" in launch["command"]
    assert launch["profiles"] == ["launch"]


def test_no_secret_is_committed() -> None:
    text = COMPOSE.read_text()
    assert re.search(r"POSTGRES_PASSWORD:\s*\$\{POSTGRES_PASSWORD:\?", text), "password must come from .env"
    assert ".env" in (ROOT / ".gitignore").read_text().split()
    example = (ROOT / ".env.example").read_text()
    assert "POSTGRES_PASSWORD=change-me" in example


def test_images_run_as_non_root() -> None:
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    user_lines = [line for line in dockerfile.splitlines() if line.startswith("USER ")]
    assert user_lines and user_lines[-1] != "USER root"
    assert "ARG TORCH_VARIANT" in dockerfile


def _docker_compose() -> str:
    exe = shutil.which("docker-compose")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("docker-compose is missing in CI: .ci/run installs Debian's docker-compose")
        pytest.skip("docker-compose not installed (apt-get install docker-compose)")
    return exe


def test_docker_compose_config_validates(tmp_path: Path) -> None:
    env_file = tmp_path / "ci.env"
    env_file.write_text((ROOT / ".env.example").read_text())
    result = subprocess.run(
        [_docker_compose(), "-f", str(COMPOSE), "--env-file", str(env_file), "config", "-q"],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_docker_compose_refuses_without_password(tmp_path: Path) -> None:
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTGRES_")}
    result = subprocess.run(
        [_docker_compose(), "-f", str(COMPOSE), "--env-file", str(env_file), "config", "-q"],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=60,
    )
    assert result.returncode != 0
    assert "POSTGRES_PASSWORD" in result.stderr
