"""`coe-sweep dashboard` (uvicorn) as a subprocess on a free 127.0.0.1 port, polled until it answers."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def dashboard(tracking_uri: str, log_path: Path, start_s: float = 60.0) -> Iterator[str]:
    port = free_port()
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "coe_sweep.cli", "dashboard", "--tracking-uri", tracking_uri, "--port", str(port)],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "COE_SWEEP_DASHBOARD_HOST": ""})
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + start_s
            while True:
                try:
                    if httpx.get(f"{url}/api/sweeps", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert process.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, f"dashboard did not start in {start_s} s"
                time.sleep(0.2)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
