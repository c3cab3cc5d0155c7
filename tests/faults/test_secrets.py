"""A password in the tracking URI never leaves the process: a real `mlflow server` on 127.0.0.1 tracked through
`http://user:SECRET@127.0.0.1:PORT`, every command (launch, status, pareto, optimal, dashboard) run with the
server up and again with it down, and every output, log, HTTP answer, stored artifact and file the sweep wrote
(the sweep directory, the MLflow server's store and artifacts, the home directory) searched for the password.
The stored spec keeps everything but the credential."""

from __future__ import annotations

import json
import secrets
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from sweep_helpers import PYTHON, reap, wait_for, write_spec
from sweep_helpers import test_env as subprocess_env

from tests.tracking.conftest import MlflowServer, free_port

pytestmark = pytest.mark.slow


def _cli(env: dict[str, str], cwd: Path, *args: str, timeout_s: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYTHON, "-m", "coe_sweep.cli", *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout_s)


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=120) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


class Dashboard:
    """`coe-sweep dashboard` in a subprocess on a free loopback port, its log in a file."""

    def __init__(self, env: dict[str, str], cwd: Path, uri: str, log: Path) -> None:
        self.port = free_port()
        self.log = log
        with open(log, "w") as out:
            self.proc = subprocess.Popen([PYTHON, "-m", "coe_sweep.cli", "dashboard", "--tracking-uri", uri,
                                          "--port", str(self.port)], env=env, cwd=cwd, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(lambda: self._up(), 120, "the dashboard to answer")

    def _up(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"dashboard exited: {self.log.read_text()[-2000:]}")
        try:
            return _get(f"http://127.0.0.1:{self.port}/")[0] == 200
        except OSError:
            return False

    def get(self, path: str) -> tuple[int, str]:
        return _get(f"http://127.0.0.1:{self.port}{path}")

    def stop(self) -> None:
        reap({self.proc.pid})


def _files(*roots: Path) -> list[Path]:
    return [p for root in roots if root.exists() for p in root.rglob("*") if p.is_file() and not p.is_symlink()]


def test_the_password_appears_nowhere(tmp_path: Path) -> None:
    password = "pw-" + secrets.token_hex(12)
    server_root = tmp_path / "mlflow-server"
    server_root.mkdir()
    server = MlflowServer(server_root, free_port())
    uri = f"http://coe:{password}@127.0.0.1:{server.port}"
    home = tmp_path / "home"
    home.mkdir()
    env = subprocess_env() | {"HOME": str(home), "COLUMNS": "200"}
    spec = write_spec(tmp_path, "secret", trials=3, flops=[2e10, 6e10], extra={"tracking": {"uri": uri}})
    outputs: dict[str, str] = {}
    dashboards: list[Dashboard] = []
    server.start()
    try:
        launched = _cli(env, tmp_path, "launch", str(spec), "--simulate", "--no-progress")
        outputs["launch"] = launched.stdout + launched.stderr
        assert launched.returncode == 0, outputs["launch"][-3000:]
        for name, args in {"status": ("status", "secret", "--tracking-uri", uri),
                           "status-spec": ("status", str(spec)),
                           "pareto": ("pareto", "secret", "--tracking-uri", uri),
                           "pareto-json": ("pareto", "secret", "--json", "--tracking-uri", uri),
                           "optimal": ("optimal", "secret", "--flops", "1e11", "--tracking-uri", uri)}.items():
            done = _cli(env, tmp_path, *args)
            outputs[name] = done.stdout + done.stderr
            assert done.returncode == 0, (name, outputs[name][-2000:])
        up = Dashboard(env, tmp_path, uri, tmp_path / "dashboard-up.log")
        dashboards.append(up)
        sweep = json.loads(up.get("/api/sweeps")[1])["sweeps"][0]
        assert sweep["name"] == "secret" and sweep["n_trials"] == 6
        run_id = json.loads(up.get("/api/sweeps/secret/trials?limit=1")[1])["rows"][0]["run_id"]
        for path in ("/api/sweeps", "/api/sweeps/secret", "/api/sweeps/secret/frontier", "/api/sweeps/secret/pareto",
                     "/api/sweeps/secret/scaling", f"/api/sweeps/secret/trials/{run_id}", "/sweeps/secret",
                     "/api/sweeps/no-such-sweep"):
            status, body = up.get(path)
            outputs[f"GET {path} (up)"] = body
            assert status == (404 if "no-such" in path else 200), (path, status, body[:500])

        server.stop()  # ------------------------------------------------ the tracking server is down
        for name, args in {"status": ("status", "secret", "--tracking-uri", uri),
                           "status-spec": ("status", str(spec)),
                           "pareto": ("pareto", "secret", "--tracking-uri", uri),
                           "optimal": ("optimal", "secret", "--flops", "1e11", "--tracking-uri", uri),
                           "launch": ("launch", str(spec), "--simulate", "--no-progress", "--set",
                                      f"cluster.storage_path={tmp_path / 'sweeps-down'}")}.items():
            done = _cli(env, tmp_path, *args)
            text = outputs[f"{name} (down)"] = done.stdout + done.stderr
            assert done.returncode in (1, 2) and "unreachable" in text and "Traceback" not in text, (name, text[-2000:])
        assert not (tmp_path / "sweeps-down").exists()  # launch created nothing before finding the server down
        status, body = up.get("/api/sweeps/another-unknown-name")  # forces a re-read of the list: the store is down
        outputs["GET unknown (down)"] = body
        assert status == 503 and "unreachable" in json.loads(body)["detail"], (status, body)
        status, body = up.get(f"/api/sweeps/secret/trials/{run_id}")
        outputs["GET trial (down)"] = body
        assert status == 503, (status, body)
        down = Dashboard(env, tmp_path, uri, tmp_path / "dashboard-down.log")
        dashboards.append(down)
        status, body = down.get("/api/sweeps")
        outputs["GET /api/sweeps (fresh, down)"] = body
        assert status == 503 and json.loads(body)["detail"].startswith("MLflow tracking store"), (status, body)
    finally:
        for dashboard in dashboards:
            dashboard.stop()
        server.stop()

    stored = list((server_root / "artifacts").rglob("spec.yaml"))
    assert len(stored) == 1 and f"coe:***@127.0.0.1:{server.port}" in stored[0].read_text()  # all but the password
    assert "tracking:" in stored[0].read_text() and "space:" in stored[0].read_text()
    leaks = [name for name, text in outputs.items() if password in text]
    for path in _files(tmp_path / "sweeps", server_root, home, *tmp_path.glob("dashboard-*.log")):
        if password.encode() in path.read_bytes():
            leaks.append(str(path))
    assert not leaks, f"the password appears in: {leaks}"
