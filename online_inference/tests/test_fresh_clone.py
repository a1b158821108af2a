"""Spec: a fresh clone, with nothing beside it (no ../shared), does what the README's first
commands promise: `make serve` sets itself up and serves the bundled model, and `make client`
sends the table the repository ships to it and reports the model's accuracy."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from online_inference.procfs import children, listening_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("fresh") / "heart-online-inference"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(where)], check=True, timeout=120)
    assert not (where.parent / "shared").exists()
    return where


def descendants(pid: int) -> list[int]:
    found = []
    for child in children(pid):
        found += [child, *descendants(child)]
    return found


def served_port(make: subprocess.Popen[bytes], timeout: float) -> int:
    """The port the service that `make serve` started listens on (PORT=0: the kernel chose it)."""
    deadline = time.monotonic() + timeout
    while make.poll() is None and time.monotonic() < deadline:
        for pid in descendants(make.pid):
            port = listening_port(pid)
            if port:
                return port
        time.sleep(0.2)  # polling while make sets up the venv and starts the service, until the deadline
    raise AssertionError(f"make serve did not start a service (exit {make.poll()})")


@pytest.fixture(scope="module")
def served(clone: Path) -> Iterator[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PORT"] = "0"
    log = (clone.parent / "serve.log").open("wb")
    make = subprocess.Popen(["make", "serve"], cwd=clone, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        yield f"http://127.0.0.1:{served_port(make, timeout=600)}"
    finally:
        os.killpg(make.pid, signal.SIGTERM)
        make.wait(60)
        log.close()


def test_make_serve_serves_the_bundled_model(served: str) -> None:
    deadline = time.monotonic() + 60
    while httpx.get(served + "/health").status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.1)  # polling the model's loading, until the deadline
    assert httpx.get(served + "/health").json()["model"]["name"] == "heart-disease-classifier"


def test_make_client_sends_the_shipped_table(clone: Path, served: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    result = subprocess.run(["make", "-s", "client", f"URL={served}"], cwd=clone, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "297 rows sent" in result.stderr and "accuracy" in result.stderr
