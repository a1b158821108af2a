"""Spec (#31, TLS on every listener; tests/reliability/test_tls.py has HTTPS): with
``TLS_CERT_FILE`` and ``TLS_KEY_FILE`` gRPC is served over TLS only, ALPN h2: tritonclient's
``ssl=True`` client and grpcio's health stub verify the server against the CA and are served; a
plain-text channel to the port is not. ``TLS_CLIENT_CA_FILE`` holds gRPC to mutual TLS too: no
client certificate, or another CA's, is refused in the handshake (UNAVAILABLE); the CA's is served."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tritonclient.utils import InferenceServerException

from online_inference.app.settings import Settings
from online_inference.tests.certs import Pair, Pki, TlsService, handshake, tls_server
from online_inference.tests.grpc.service import MODEL, rows

SERVING = health_pb2.HealthCheckResponse.SERVING


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki.make(tmp_path_factory.mktemp("pki"))


def tls_settings(pki: Pki, mutual: bool) -> Settings:
    client_ca = {"TLS_CLIENT_CA_FILE": pki.ca.cert} if mutual else {}
    return Settings(environment={}, TLS_CERT_FILE=pki.server.cert, TLS_KEY_FILE=pki.server.key, **client_ca)


@pytest.fixture(scope="module")
def service(pki: Pki) -> Iterator[TlsService]:
    with tls_server(tls_settings(pki, mutual=False), pki) as running:
        yield running


@pytest.fixture(scope="module")
def mutual(pki: Pki) -> Iterator[TlsService]:
    with tls_server(tls_settings(pki, mutual=True), pki) as running:
        yield running


def triton(target: str, pki: Pki, cert: Pair | None = None) -> triton_grpc.InferenceServerClient:
    """tritonclient over TLS, verifying the server against the test CA, presenting ``cert``."""
    return triton_grpc.InferenceServerClient(target, ssl=True, root_certificates=str(pki.ca.cert),
                                             private_key=None if cert is None else str(cert.key),
                                             certificate_chain=None if cert is None else str(cert.cert))


def infer(client: triton_grpc.InferenceServerClient, n: int = 3) -> np.ndarray:
    tensor = triton_grpc.InferInput("input", [n, rows(1).shape[1]], "FP32")
    tensor.set_data_from_numpy(rows(n))
    return client.infer(MODEL, [tensor], client_timeout=10).as_numpy("probabilities")


def health(target: str, credentials: grpc.ChannelCredentials | None) -> int:
    """grpc.health.v1's status over a secure channel (or a plain-text one: ``credentials`` None)."""
    channel = grpc.insecure_channel(target) if credentials is None else grpc.secure_channel(target, credentials)
    with channel:
        return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=10).status


def credentials(pki: Pki, cert: Pair | None = None) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(pki.ca.cert.read_bytes(), None if cert is None else cert.key.read_bytes(),
                                        None if cert is None else cert.cert.read_bytes())


def test_tritonclient_infers_over_tls(service: TlsService, pki: Pki) -> None:
    client = triton(service.grpc_target, pki)
    assert client.is_server_ready() and client.is_model_ready(MODEL)
    assert infer(client).shape[0] == 3


def test_grpc_health_over_tls(service: TlsService, pki: Pki) -> None:
    assert health(service.grpc_target, credentials(pki)) == SERVING


def test_the_grpc_port_speaks_tls_with_alpn_h2_only(service: TlsService, pki: Pki) -> None:
    with handshake(service.grpc_port, pki.client_context(alpn="h2")) as sock:
        assert sock.selected_alpn_protocol() == "h2" and sock.version() in ("TLSv1.2", "TLSv1.3")


def test_plain_text_grpc_to_the_tls_port_fails(service: TlsService) -> None:
    with pytest.raises(grpc.RpcError) as failed:
        health(service.grpc_target, None)
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    with pytest.raises(InferenceServerException):
        triton_grpc.InferenceServerClient(service.grpc_target).is_server_live(client_timeout=10)


@pytest.mark.parametrize("who", ["none", "stranger"])
def test_mutual_tls_refuses_a_client_without_a_certificate_the_ca_signed(mutual: TlsService, pki: Pki, who: str) -> None:
    cert = None if who == "none" else pki.stranger
    with pytest.raises(grpc.RpcError) as failed:
        health(mutual.grpc_target, credentials(pki, cert))
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    with pytest.raises(InferenceServerException):
        infer(triton(mutual.grpc_target, pki, cert))


def test_mutual_tls_serves_a_client_the_ca_signed(mutual: TlsService, pki: Pki) -> None:
    assert health(mutual.grpc_target, credentials(pki, pki.client)) == SERVING
    assert infer(triton(mutual.grpc_target, pki, pki.client), n=5).shape[0] == 5
