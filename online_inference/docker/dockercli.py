"""Docker helpers for the size study, the benchmark and the container tests: the CLI, the
Makefile, and containers run with host networking on a port the kernel chooses (read back from
/proc), or on a free one where the port must be known before the start."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import socket

import httpx

from online_inference.devtools.procfs import listening_ports

ROOT = Path(__file__).resolve().parents[2]
DOCKER = os.environ.get("DOCKER", "docker")
IMAGE = os.environ.get("IMAGE", "heart-inference")
VARIANTS = ("full", "slim", "distroless")
HARDENED = ("--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL", "--security-opt", "no-new-privileges")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def docker(*args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DOCKER, *args], capture_output=True, text=True, check=check, timeout=timeout)


def engine_available() -> str | None:
    """None when a Docker engine answers; otherwise why not."""
    try:
        result = docker("info", "--format", "{{.ServerVersion}}", check=False, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"{DOCKER}: {error}"
    return None if result.returncode == 0 else f"{DOCKER} info: {result.stderr.strip()[:300]}"


def make(*targets: str, **variables: str) -> None:
    """Run the repo's Makefile (the same commands a user runs), streaming its output on failure."""
    command = ["make", "-C", str(ROOT), *targets, *(f"{k}={v}" for k, v in variables.items())]
    result = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")


def inspect(image: str) -> dict:  # type: ignore[type-arg]
    return json.loads(docker("image", "inspect", image).stdout)[0]  # type: ignore[no-any-return]


class Container:
    def __init__(self, name: str, url: str):
        self.name, self.url = name, url

    def logs(self) -> str:
        result = docker("logs", self.name, check=False)
        return result.stdout + result.stderr

    def top_uids(self) -> set[str]:
        lines = docker("top", self.name, "-eo", "uid,pid").stdout.splitlines()[1:]
        return {line.split()[0] for line in lines if line.strip()}


@contextmanager
def running(image: str, *flags: str, env: dict[str, str] | None = None, wait: bool = True,
            timeout: float = 60, port: int = 0) -> Iterator[Container]:
    """``docker run -d --network host``; waits for /health 200. ``port=0`` (the default) lets the
    kernel choose it, and reads it back; the image's HEALTHCHECK needs it chosen here."""
    env_flags = [f"--env={k}={v}" for k, v in {"PORT": str(port), "GRPC_PORT": "0", **(env or {})}.items()]
    name = docker("run", "-d", "--network", "host", *env_flags, *flags, image).stdout.strip()[:12]
    container = Container(name, f"http://127.0.0.1:{port}")
    try:
        if port == 0:
            container.url = f"http://127.0.0.1:{container_port(container, timeout)}"
        if wait:
            wait_healthy(container, timeout)
        yield container
    finally:
        docker("rm", "-f", name, check=False)


def container_port(container: Container, timeout: float) -> int:
    """The port the container's main process listens on: with host networking, its /proc entry
    on the host tells (the tests run as root, as CI does)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = int(docker("inspect", "-f", "{{.State.Pid}}", container.name).stdout.strip() or 0)
        if pid == 0:  # exited
            break
        for port in listening_ports(pid):  # HTTP's, and gRPC's (which answers no HTTP/1.1)
            try:
                httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                return port
            except httpx.TransportError:  # gRPC's port, or not answering yet: the next, then poll again
                continue
        time.sleep(0.01)  # polling the starting container, until the deadline
    raise AssertionError(f"{container.name} never listened; logs:\n{container.logs()[-3000:]}")


def wait_healthy(container: Container, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            response = httpx.get(container.url + "/health", timeout=2)
            if response.status_code == 200:
                return
            last = response.text
        except httpx.TransportError as error:
            last = repr(error)
        state = docker("inspect", "-f", "{{.State.Status}}", container.name, check=False).stdout.strip()
        if state not in ("running", "created"):
            break
        time.sleep(0.2)
    raise AssertionError(f"{container.name} not healthy ({last}); logs:\n{container.logs()[-3000:]}")
