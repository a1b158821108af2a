"""Shared test helpers: the service's server in a thread, the Kaggle table, the bundled card."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from online_inference.app.dataplane.admission import FIXED_BYTES, Admission
from online_inference.app.settings import BUNDLED_MODEL, Settings
from online_inference.app.dataplane.plane import DataPlane, Loader
from online_inference.app.server import Server, build_server, uvicorn_config
from online_inference.app.model.session import ModelSession
from online_inference.card import CARD_METADATA_KEY, ModelCard
from online_inference.devtools.procfs import descendants, listening_ports

SHARED_KAGGLE_CSV = Path(__file__).resolve().parents[3] / "shared" / "data" / "heart_cleveland_upload.csv"


Answer = tuple[int, bytes]


def bundled_session() -> ModelSession:
    return ModelSession(BUNDLED_MODEL.read_bytes())


def bundled_card() -> ModelCard:
    return bundled_session().card


def bundled_session_with(**change: Any) -> ModelSession:
    """The bundled model with its card changed as an export could have written it (class labels,
    say): the same graph, another card."""
    import onnx  # the export's library, which the service never loads: imported only here

    model = onnx.load_from_string(BUNDLED_MODEL.read_bytes())
    onnx.helper.set_model_props(model, {CARD_METADATA_KEY: dataclasses.replace(bundled_card(), **change).to_json()})
    return ModelSession(model.SerializeToString())


def model_calls(plane: DataPlane) -> float:
    """How many times the plane has called the model (its metrics count every call)."""
    return plane.metrics.registry.get_sample_value("inference_duration_seconds_count") or 0.0


def valid_row(card: ModelCard) -> list[float]:
    return [f.example for f in card.features]


def server_port(server: Server) -> int:
    """The port ``server`` listens on (PORT=0: the one the system chose)."""
    return int(server.servers[0].sockets[0].getsockname()[1])


@contextmanager
def live_server(app: Any = None, ready_path: str | None = "/health", timeout: float = 20, settings: Settings | None = None,
                loader: Loader | None = bundled_session) -> Iterator[str]:
    """The service's own server (:func:`build_server`: its uvicorn configuration and edge) in a
    thread, on a port the system chooses; yields its base URL. ``app`` replaces the service's
    application (by default the service with ``loader``'s model)."""
    settings = (settings or Settings(environment={})).replace(HOST="127.0.0.1", PORT=0, GRPC_PORT=0, LOG_LEVEL="warning")
    server = build_server(settings, loader) if app is None else Server(uvicorn_config(settings, app, Admission.of(settings)), on_drain=lambda: None)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, timeout)
        url = f"http://127.0.0.1:{server_port(server)}"
        if ready_path:
            wait_until(lambda: httpx.get(url + ready_path).status_code == 200, timeout)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        assert not thread.is_alive(), "the server did not stop"


# What the tests' own run adds to the environment that a user's shell does not have: the tests'
# PYTHONPATH and venv, and `make test`'s variables (a make started under them prints "Entering
# directory" lines into its output, as a sub-make).
NOT_A_USERS = ("PYTHONPATH", "VIRTUAL_ENV", "MAKELEVEL", "MAKEFLAGS", "MFLAGS")


def user_environment() -> dict[str, str]:
    """The environment a user's shell would give a command: this one without :data:`NOT_A_USERS`."""
    return {k: v for k, v in os.environ.items() if k not in NOT_A_USERS}


@contextmanager
def serving(command: str, cwd: Path) -> Iterator[str]:
    """``command`` (a shell line that ends by running the service) in ``cwd``, with PORT=0 and
    without the caller's PYTHONPATH and venv; yields its URL once /health answers 200, and stops
    it (SIGTERM to its process group) at the end."""
    env = {**user_environment(), "PORT": "0", "GRPC_PORT": "0"}
    log = tempfile.TemporaryFile()  # the command's output: shown if it never listens
    shell = subprocess.Popen(command, shell=True, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True)
    try:
        try:
            url = f"http://127.0.0.1:{wait_listening(shell, timeout=600)}"
        except AssertionError as error:
            log.seek(0)
            raise AssertionError(f"{error}; its output ends:\n{log.read()[-3000:].decode(errors='replace')}") from None
        deadline = time.monotonic() + 60
        while httpx.get(url + "/health").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.1)  # polling the model's loading, until the deadline
        yield url
    finally:
        os.killpg(shell.pid, signal.SIGTERM)
        shell.wait(60)
        log.close()


def wait_listening(process: subprocess.Popen[bytes], timeout: float) -> int:
    """The HTTP port that ``process``, or a process it started (``make serve``, a shell line),
    listens on; the service was started with PORT=0 (and GRPC_PORT=0), so the kernel chose it."""
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        for pid in (process.pid, *descendants(process.pid)):
            port = http_port(listening_ports(pid))
            if port:
                return port
        time.sleep(0.05)  # polling the starting process, until the deadline
    raise AssertionError(f"the service did not listen (exit {process.poll()})")


def http_port(ports: list[int]) -> int | None:
    """Which of a service's ports answers HTTP/1.1 (the other is gRPC's, which speaks HTTP/2 only,
    and listens first)."""
    for port in ports:
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
            return port
        except httpx.TransportError:  # gRPC's port: it ends an HTTP/1.1 connection
            continue
    return None


def loaded(plane: DataPlane, timeout: float) -> bool:
    """Whether ``plane``'s model loading ended (ready or failed) within ``timeout``."""
    wait_until(lambda: plane.state != "loading", timeout)
    return True


def wait_until(condition, timeout: float, interval: float = 0.05) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except httpx.TransportError:  # not listening yet: poll again, until the deadline
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout}s")
        time.sleep(interval)  # polling the condition, until the deadline


def call(app: Any, path: str, chunks: list[bytes], method: str = "POST", headers: list[tuple[bytes, bytes]] | None = None,
         disconnect: bool = False) -> Answer:
    """One request straight through the ASGI interface: the body arrives in ``chunks``."""
    status, _, body = exchange(app, path, chunks, method, headers, disconnect)
    return status, body


def exchange(app: Any, path: str, chunks: list[bytes], method: str = "POST", headers: list[tuple[bytes, bytes]] | None = None,
             disconnect: bool = False) -> tuple[int, dict[bytes, bytes], bytes]:
    """:func:`call`, with the answer's headers."""
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1} for i, chunk in enumerate(chunks)
    ]
    if disconnect:
        messages[-1]["more_body"] = True
        messages.append({"type": "http.disconnect"})
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "path": path,
             "raw_path": path.encode(), "root_path": "", "scheme": "http", "query_string": b"",
             "headers": headers or [], "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 8000)}
    asyncio.run(app(scope, receive, send))
    if not sent:
        return 0, {}, b""
    return sent[0]["status"], dict(sent[0]["headers"]), b"".join(m.get("body", b"") for m in sent[1:])


def read_response(sock: socket.socket) -> bytes:
    """One whole response (head and Content-Length body), however the segments arrive."""
    return read_responses(sock, 1)[0]


def read_responses(sock: socket.socket, count: int) -> list[bytes]:
    """``count`` whole responses in the order they arrive on ``sock`` (pipelined requests)."""
    data, responses = b"", []
    while len(responses) < count:
        while b"\r\n\r\n" not in data:
            data += receive_more(sock)
        head, _, rest = data.partition(b"\r\n\r\n")
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")))
        while len(rest) < length:
            rest += receive_more(sock)
        responses.append(head + b"\r\n\r\n" + rest[:length])
        data = rest[length:]
    return responses


def receive_more(sock: socket.socket) -> bytes:
    chunk = sock.recv(65536)
    assert chunk, "the connection closed mid-response"
    return chunk




def assert_nothing_charged(url: str, timeout: float = 10) -> None:
    """Once every client has gone, the memory budget holds nothing but the scrape's own request
    (FIXED_BYTES), and no request is counted queued: no request, refused, cut off, timed out or
    dropped, kept its charge (a charge kept would shrink the budget for good, until the service
    refused everything) or its place (every shared call would then wait a turn for it)."""
    try:
        wait_until(lambda: held_bytes(url) == 0 and metric_value(url, "queued_requests") == 0, timeout)
    except TimeoutError:
        raise AssertionError(f"{held_bytes(url):,.0f} bytes still charged and {metric_value(url, 'queued_requests'):.0f} "
                             f"requests queued {timeout:g} s after every client left") from None


def held_bytes(url: str) -> float:
    """What the requests in flight hold, less the /metrics request's own charge."""
    return metric_value(url, "inflight_bytes") - FIXED_BYTES


def metric_value(url: str, name: str, **labels: str) -> float:
    """A sample of the service's /metrics (0 if absent), as Prometheus would scrape it."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(httpx.get(url + "/metrics").text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0
