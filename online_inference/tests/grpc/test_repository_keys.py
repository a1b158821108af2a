"""Spec (#34, #31): with ``API_KEYS_FILE``, the repository API is the group ``model-repository``,
against the real process, over REST and gRPC: no key is 401 / UNAUTHENTICATED, a key of another
group (an inference key, even one with metadata too) 403 / PERMISSION_DENIED, and a
``model-repository`` key may index, unload and load (the probes, as ever, need none)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import httpx
import pytest
import tritonclient.grpc as triton_grpc
from tritonclient.utils import InferenceServerException

from online_inference.app.dataplane.access import key_line
from online_inference.tests.reliability.test_api_keys import KeyedService, keyed_service

NAME = "heart-disease-classifier"
REPOSITORY, CLINIC = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
KEYS = f"{key_line('ops', REPOSITORY, 'model-repository')}\n{key_line('clinic', CLINIC, 'inference,metadata')}\n"
PATHS = ("/v2/repository/index", f"/v2/repository/models/{NAME}/unload", f"/v2/repository/models/{NAME}/load")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeyedService]:
    with keyed_service(tmp_path_factory.mktemp("repository-keys"), KEYS) as running:
        yield running


def post(service: KeyedService, path: str, key: str | None = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.post(service.url + path, headers=headers, timeout=30)


def test_rest_needs_a_model_repository_key(service: KeyedService) -> None:
    for path in PATHS:
        assert post(service, path).status_code == 401
        assert post(service, path, CLINIC).status_code == 403
    assert post(service, PATHS[1], REPOSITORY).status_code == 200
    assert httpx.get(service.url + "/health").json()["status"] == "unloaded"
    assert post(service, PATHS[2], REPOSITORY).status_code == 200
    assert post(service, PATHS[0], REPOSITORY).json() == [{"name": NAME, "version": "1.0.0", "state": "READY"}]


def test_grpc_needs_a_model_repository_key(service: KeyedService) -> None:
    client = triton_grpc.InferenceServerClient(f"127.0.0.1:{service.service.grpc_port}")
    for call in (client.get_model_repository_index, lambda headers=None: client.unload_model(NAME, headers=headers),
                 lambda headers=None: client.load_model(NAME, headers=headers)):
        with pytest.raises(InferenceServerException) as refused:
            call()
        assert refused.value.status() == "StatusCode.UNAUTHENTICATED"
        with pytest.raises(InferenceServerException) as refused:
            call(headers={"authorization": f"Bearer {CLINIC}"})
        assert refused.value.status() == "StatusCode.PERMISSION_DENIED"
    ops = {"authorization": f"Bearer {REPOSITORY}"}
    client.unload_model(NAME, headers=ops)
    assert not client.is_model_ready(NAME)
    client.load_model(NAME, headers=ops)
    assert client.is_model_ready(NAME)
    index = client.get_model_repository_index(headers=ops, as_json=True)
    assert index["models"] == [{"name": NAME, "version": "1.0.0", "state": "READY"}]
