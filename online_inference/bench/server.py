"""Start a service as a real process (``python -m ...``) on a port the kernel chooses, pinned with
taskset, and measure it: cold start (process start → /health 200) and peak RSS. Used by the
benchmark and the reliability tests."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from online_inference.devtools.procfs import children, listening_ports, status_kb

ROOT = Path(__file__).resolve().parents[2]
SERVICES = {"onnx": "online_inference.app", "onnx_noblas": "online_inference.app", "baseline": "online_inference.bench.baseline_app", "floor": "online_inference.bench.floor_app",
            "floor_stock": "online_inference.bench.floor_app --stock"}


@dataclass
class Service:
    kind: str
    url: str
    process: subprocess.Popen[bytes]
    cold_start_s: float

    def peak_rss_mb(self) -> float:
        """VmHWM of the server process and its children."""
        return self.memory_mb("VmHWM")

    def rss_mb(self) -> float:
        """Current VmRSS of the server process and its children."""
        return self.memory_mb("VmRSS")

    def memory_mb(self, field: str) -> float:
        pids = [self.process.pid, *children(self.process.pid)]
        return sum(status_kb(pid, field) for pid in pids) / 1024

    @property
    def grpc_port(self) -> int:
        """The port the service listens on beside HTTP's: gRPC's (``GRPC_PORT=0``: the kernel's choice)."""
        http = int(self.url.rsplit(":", 1)[1])
        (port,) = [p for p in listening_ports(self.process.pid) if p != http]
        return port


def health_status(port: int) -> int | None:
    """``GET /health`` with the standard library's client: a probe that costs the measuring process
    well under a millisecond (a client with TLS set up, like httpx's, takes tens), so the cold start
    measured is the service's. None while nothing listens."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        connection.request("GET", "/health")
        return connection.getresponse().status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()


def wait_healthy(process: subprocess.Popen[bytes], deadline: float) -> int | None:
    """The port of a started service once its /health answers 200; None if it exits or the
    deadline passes first."""
    while process.poll() is None and time.perf_counter() < deadline:
        for port in listening_ports(process.pid):  # HTTP's, and gRPC's (which answers no HTTP/1.1)
            if health_status(port) == 200:
                return port
        time.sleep(0.002)  # polling the starting process, until the deadline
    return None


@contextmanager
def serve(kind: str, cpus: str = "0", env: dict[str, str] | None = None, tracebacks: bool = False,
          root: Path = ROOT) -> Iterator[Service]:
    """The service ``kind`` as a process, stopped (SIGTERM) at the end. A traceback in its log then
    fails the caller (a test, the benchmark), unless ``tracebacks`` says one is expected. ``root``:
    the checkout it runs from (another commit's, for an A/B)."""
    env = {**os.environ, "PYTHONPATH": str(root), "PORT": "0", "GRPC_PORT": "0", "LOG_LEVEL": "warning", **(env or {})}
    # Python's default, which an environment may turn off: a start reads the bytecode of what it
    # imports, written by an earlier start, as a deployed service does (the images precompile it).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    logfile = tempfile.TemporaryFile()  # a file, not a pipe: a full pipe would block the server
    started = time.perf_counter()
    process = subprocess.Popen(["taskset", "-c", cpus, sys.executable, "-m", *SERVICES[kind].split()], env=env, cwd=root,
                               stdout=logfile, stderr=subprocess.STDOUT)  # (-m puts the working directory first on the path)
    try:
        port = wait_healthy(process, started + 120)
        if port is None:
            logfile.seek(0)
            raise RuntimeError(f"{kind} did not start: {logfile.read().decode()[-2000:]}")
        yield Service(kind, f"http://127.0.0.1:{port}", process, time.perf_counter() - started)
    finally:
        stopped = process.poll() is not None
        if not stopped:
            process.terminate()
            try:
                process.wait(30)
                stopped = True
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        logfile.seek(0)
        service_log = logfile.read().decode(errors="replace")
        logfile.close()
    if not stopped:
        raise AssertionError(f"{kind} did not stop within 30 s of SIGTERM:\n{service_log[-3000:]}")
    if "Traceback" in service_log and not tracebacks:
        raise AssertionError(f"{kind} logged a traceback:\n{service_log[-3000:]}")
