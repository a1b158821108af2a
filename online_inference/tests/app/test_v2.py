"""Spec: the Open Inference Protocol (V2) works with the real Triton HTTP client, with its
defaults (binary tensor data in and out), in JSON, and mixed, each answering exactly what the
JSON form answers, the model's float32 probabilities bit for bit; on the versioned paths too; with the same validation and 400s as
``/predict``; and every error under ``/v2`` in the protocol's ``{"error": ...}`` shape."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import tritonclient.http as triton
from fastapi.testclient import TestClient
from tritonclient.utils import InferenceServerException

from online_inference.card import ModelCard
from online_inference.tests.helpers import bundled_session, live_server, valid_row
from online_inference.tests.v2_cases import INFER_PATH, MALFORMED_BINARY


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    with live_server() as url:
        yield url


@pytest.fixture
def triton_client(server_url: str) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(url=server_url.removeprefix("http://"))


def infer(client: triton.InferenceServerClient, card: ModelCard, X: np.ndarray, datatype: str = "FP32",  # type: ignore[no-untyped-def]
          binary_in: bool = False, binary_out: bool | None = False, version: str = ""):
    """``binary_out=None``: no outputs named, so the client asks for all of them as bytes."""
    tensor = triton.InferInput(card.input_name, list(X.shape), datatype)
    tensor.set_data_from_numpy(X, binary_data=binary_in)
    outputs = None if binary_out is None else [
        triton.InferRequestedOutput(name, binary_data=binary_out) for name in (card.label_output, card.probability_output)]
    return client.infer(card.name, [tensor], outputs=outputs, model_version=version)


def answers(result, card: ModelCard) -> tuple[list[int], bytes]:  # type: ignore[no-untyped-def]
    return result.as_numpy(card.label_output).tolist(), result.as_numpy(card.probability_output).tobytes()


def test_server_and_model_are_live_and_ready(triton_client: triton.InferenceServerClient, card: ModelCard) -> None:
    assert triton_client.is_server_live()
    assert triton_client.is_server_ready()
    assert triton_client.is_model_ready(card.name)
    assert not triton_client.is_model_ready("no-such-model")


def test_model_metadata_describes_the_signature(triton_client: triton.InferenceServerClient, card: ModelCard) -> None:
    metadata = triton_client.get_model_metadata(card.name)
    assert metadata["inputs"] == [{"name": card.input_name, "datatype": "FP32", "shape": [-1, 13]}]
    assert metadata["outputs"][-1] == {"name": card.contributions.output, "datatype": "FP32", "shape": [-1, 13]}
    assert [o["name"] for o in metadata["outputs"]] == [card.label_output, card.probability_output, card.contributions.output]
    assert triton_client.get_server_metadata()["name"] == "heart-online-inference"


@pytest.mark.parametrize(("binary_in", "binary_out"), [(True, None), (True, False), (False, True), (True, True)],
                         ids=["the client's defaults", "binary in, JSON out", "JSON in, binary out", "binary both ways"])
def test_binary_tensor_data_answers_exactly_as_json_does(triton_client, card: ModelCard, binary_in, binary_out) -> None:  # type: ignore[no-untyped-def]
    X = np.array([valid_row(card), [f.training.max for f in card.features], [f.training.min for f in card.features]],
                 dtype=np.float32)
    expected = answers(infer(triton_client, card, X), card)
    assert answers(infer(triton_client, card, X, binary_in=binary_in, binary_out=binary_out), card) == expected


def test_the_versioned_paths_serve_the_cards_version(triton_client, card: ModelCard) -> None:  # type: ignore[no-untyped-def]
    X = np.array([valid_row(card)], dtype=np.float32)
    assert answers(infer(triton_client, card, X, binary_in=True, binary_out=None, version=card.version), card) == \
        answers(infer(triton_client, card, X), card)
    assert triton_client.is_model_ready(card.name, card.version)
    assert triton_client.get_model_metadata(card.name, card.version)["versions"] == [card.version]
    assert not triton_client.is_model_ready(card.name, "2")
    with pytest.raises(InferenceServerException, match="has no version '2'") as error:
        infer(triton_client, card, X, version="2")
    assert error.value.status() == "404"


def test_every_error_under_v2_is_in_the_protocols_shape(client: TestClient, card: ModelCard) -> None:
    slash = client.get("/v2/", follow_redirects=False)
    assert slash.status_code == 200 and slash.json() == client.get("/v2").json()
    for method, path, status in [("GET", "/v2/nothing/here", 404), ("GET", f"/v2/models/{card.name}/versions/2", 404),
                                 ("GET", f"/v2/models/{card.name}/versions/2/ready", 404), ("GET", "/v2/models/other", 404),
                                 ("POST", f"/v2/models/{card.name}/versions/2/infer", 404), ("DELETE", "/v2/health/live", 405)]:
        response = client.request(method, path)
        assert response.status_code == status, (path, response.text)
        assert set(response.json()) == {"error"} and response.json()["error"], (path, response.text)
    assert client.get("/v2/models/other").json()["error"] == "unknown model 'other'; this server serves 'heart-disease-classifier'"
    assert client.delete("/v2/health/live").headers["allow"] == "GET"


@pytest.mark.parametrize(("case", "headers", "body", "reason"), MALFORMED_BINARY, ids=[c[0] for c in MALFORMED_BINARY])
def test_malformed_binary_data_answers_400_with_its_reason(client: TestClient, case: str, headers: dict[str, str],
                                                           body: bytes, reason: str) -> None:
    response = client.post(INFER_PATH, content=body, headers=headers)
    assert response.status_code == 400, response.text
    assert reason in response.json()["error"], response.text


def test_the_server_declares_the_binary_and_repository_extensions(triton_client) -> None:  # type: ignore[no-untyped-def]
    assert triton_client.get_server_metadata()["extensions"] == ["binary_tensor_data", "model_repository"]


@pytest.mark.parametrize("binary_out", [False, True], ids=["JSON out", "binary out"])
def test_infer_answers_the_models_labels_and_float32_bits(triton_client: triton.InferenceServerClient, card: ModelCard,
                                                          binary_out: bool) -> None:
    X = np.array([valid_row(card), [f.training.max for f in card.features]], dtype=np.float32)
    result = infer(triton_client, card, X, binary_out=binary_out)
    expected = bundled_session().run(X)
    assert result.as_numpy(card.label_output).tolist() == expected.labels.tolist()
    assert result.as_numpy(card.probability_output).tobytes() == expected.probabilities.tobytes()


def test_json_probabilities_are_the_float32_values_exactly_even_to_a_float64_reader(client: TestClient, card: ModelCard) -> None:
    X = np.array([valid_row(card), [f.training.min for f in card.features]], dtype=np.float32)
    body = {"inputs": [{"name": card.input_name, "shape": list(X.shape), "datatype": "FP32", "data": X.ravel().tolist()}]}
    outputs = {o["name"]: o["data"] for o in client.post(INFER_PATH, json=body).json()["outputs"]}
    assert outputs[card.probability_output] == bundled_session().run(X).probabilities.ravel().astype(np.float64).tolist()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda X: X.__setitem__((0, 2), 1.5), "not one of the codes"),
        (lambda X: X.__setitem__((1, 4), 9000), "outside the plausible range"),
        (lambda X: X.__setitem__((0, 0), np.nan), "finite"),
        (lambda X: X.__setitem__((1, 2), np.nextafter(np.float32(2), np.float32(3))), "not one of the codes"),
    ],
    ids=["non-integral code", "out of bounds", "NaN", "a code a float32 step above an integer"],
)
def test_invalid_values_are_rejected_like_predict(triton_client, card: ModelCard, change, message: str) -> None:  # type: ignore[no-untyped-def]
    X = np.array([valid_row(card)] * 2, dtype=np.float32)
    change(X)
    with pytest.raises(InferenceServerException) as error:
        infer(triton_client, card, X)
    assert error.value.status() == "400"
    assert message in str(error.value)


def test_wrong_datatype_and_shape_answer_400(triton_client, card: ModelCard) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InferenceServerException, match="FP32"):
        infer(triton_client, card, np.array([valid_row(card)], dtype=np.float64), datatype="FP64")
    with pytest.raises(InferenceServerException, match=r"shape \[N, 13\]"):
        infer(triton_client, card, np.array([valid_row(card)[:12]], dtype=np.float32))


def test_v2_errors_over_plain_http(client: TestClient, card: ModelCard) -> None:
    url = f"/v2/models/{card.name}/infer"
    good = {"inputs": [{"name": card.input_name, "shape": [1, 13], "datatype": "FP32", "data": [valid_row(card)]}]}
    assert client.post(url, json=good).status_code == 200
    assert client.post("/v2/models/other/infer", json=good).status_code == 404
    cases = [
        {"inputs": []},
        {"inputs": [{**good["inputs"][0], "name": "x"}]},
        {"inputs": [{**good["inputs"][0], "shape": [2, 13]}]},
        {"inputs": [{**good["inputs"][0], "data": [["63"] + valid_row(card)[1:]]}]},
        {**good, "outputs": [{"name": "nope"}]},
        {"inputs": "nope"},
    ]
    for body in cases:
        response = client.post(url, json=body)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["error"]
    assert client.post(url, content=b"{").status_code == 400
    stringy = client.post(url, json=cases[3]).json()
    assert stringy["problems"][0] == {"row": 0, "feature": "age", "reason": "must be a number, got string"}


@pytest.mark.parametrize("rows", [1, 40])  # checked value by value, and as a whole array
def test_a_boolean_is_not_a_number_in_v2_data_at_any_batch_size(client: TestClient, card: ModelCard, rows: int) -> None:
    row = valid_row(card)
    coded = next(i for i, f in enumerate(card.features) if f.is_integral and f.bounds.min <= 1 <= f.bounds.max)
    data = [row] * (rows - 1) + [[*row[:coded], True, *row[coded + 1:]]]
    body = {"inputs": [{"name": card.input_name, "shape": [rows, 13], "datatype": "FP32", "data": data}]}
    response = client.post(f"/v2/models/{card.name}/infer", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["problems"][0]["row"] == rows - 1, response.text
