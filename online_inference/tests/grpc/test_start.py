"""Spec: gRPC starts with the server and follows the model's life cycle. With GRPC_PORT=0 the
system chooses the port (the server has it, and logs it). While the model loads, and after it has
failed to load, grpc.health.v1 answers NOT_SERVING, ServerReady and ModelReady answer false, and
ModelInfer UNAVAILABLE; once it is ready, SERVING and true. A GRPC_PORT that is taken fails the
start: the process exits 3, as for an HTTP port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from online_inference.app.model.session import ModelSession
from online_inference.app.protocols.v2.proto import grpc_predict_v2_pb2 as pb
from online_inference.app.server import Server, build_server
from online_inference.app.settings import Settings
from online_inference.tests.grpc.service import INFER, MODEL, infer_request
from online_inference.tests.helpers import bundled_session, loaded, wait_until

SERVICE = "/inference.GRPCInferenceService/"
ROOT = Path(__file__).resolve().parents[3]


@contextmanager
def started(loader: Any) -> Iterator[tuple[Server, str]]:
    """The service's server in a thread, both ports chosen by the system; yields it and its gRPC target."""
    settings = Settings(environment={}, HOST="127.0.0.1", PORT=0, GRPC_PORT=0, LOG_LEVEL="warning")
    server = build_server(settings, loader)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.grpc is not None and server.grpc._server is not None, 20)
        assert server.grpc is not None
        yield server, f"127.0.0.1:{server.grpc.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        assert not thread.is_alive(), "the server did not stop"


def statuses(target: str) -> tuple[int, bool, bool, grpc.StatusCode]:
    """Health's status, ServerReady, ModelReady, and ModelInfer's code."""
    with grpc.insecure_channel(target) as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service="")).status
        server_ready = pb.ServerReadyResponse.FromString(channel.unary_unary(SERVICE + "ServerReady")(b"")).ready
        model_ready = pb.ModelReadyResponse.FromString(
            channel.unary_unary(SERVICE + "ModelReady")(pb.ModelReadyRequest(name=MODEL).SerializeToString())).ready
        try:
            channel.unary_unary(INFER)(infer_request().SerializeToString())
            code = grpc.StatusCode.OK
        except grpc.RpcError as error:
            code = error.code()
    return health, server_ready, model_ready, code


def test_grpc_follows_loading_then_ready() -> None:
    gate = threading.Event()

    def slow_loader() -> ModelSession:
        gate.wait(20)
        return bundled_session()

    with started(slow_loader) as (server, target):
        assert statuses(target) == (health_pb2.HealthCheckResponse.NOT_SERVING, False, False, grpc.StatusCode.UNAVAILABLE)
        gate.set()
        wait_until(lambda: server.grpc is not None and statuses(target)[0] == health_pb2.HealthCheckResponse.SERVING, 20)
        assert statuses(target) == (health_pb2.HealthCheckResponse.SERVING, True, True, grpc.StatusCode.OK)


def test_grpc_says_not_serving_after_a_failed_load() -> None:
    def failing_loader() -> ModelSession:
        raise OSError("no such model")

    with started(failing_loader) as (server, target):
        assert loaded(server.config.app.plane, 20) and server.config.app.plane.state == "failed"
        assert statuses(target) == (health_pb2.HealthCheckResponse.NOT_SERVING, False, False, grpc.StatusCode.UNAVAILABLE)


@pytest.mark.timeout(60)
def test_a_taken_grpc_port_fails_the_start() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PORT": "0", "GRPC_PORT": str(taken.getsockname()[1])}
        result = subprocess.run([sys.executable, "-m", "online_inference.app"], env=env, capture_output=True, text=True,
                                timeout=50)
    assert result.returncode == 3
    assert "gRPC cannot listen on port" in result.stderr
