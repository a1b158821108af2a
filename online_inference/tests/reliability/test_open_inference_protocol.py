"""Spec: the running server answers the Open Inference Protocol as the protocol's own REST OpenAPI
document (vendored beside this file, see SOURCE.md) describes it. schemathesis generates requests
from that document, valid and invalid, for every operation, on the served model's name and
version, and every answer must conform: a documented status, the documented body, never a 5xx.

One of schemathesis's checks is left out: that a request valid by the document is accepted. The
document cannot say which inputs a model takes: a request for a tensor ``input0`` of ``UINT32``
is valid by it, and the server must refuse it (400, which the document lists for inference)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode, checks
from schemathesis.schemas import APIOperation

from online_inference.card import ModelCard
from online_inference.tests.helpers import live_server

DOCUMENT = Path(__file__).with_name("open_inference_protocol") / "open_inference_rest.yaml"
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))


def protocol_operations() -> list[APIOperation]:
    raw = yaml.safe_load(DOCUMENT.read_text().replace("${", "{"))  # its ${NAME} is OpenAPI's {NAME}
    return [result.ok() for result in schemathesis.openapi.from_dict(raw).get_all_operations()]


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with live_server() as base:
        yield base


def test_the_document_lists_the_paths_the_protocol_defines() -> None:
    paths = {operation.path for operation in protocol_operations()}
    assert paths == {"/v2/health/live", "/v2/health/ready", "/v2/", "/v2/models/{MODEL_NAME}/versions/{MODEL_VERSION}",
                     "/v2/models/{MODEL_NAME}/versions/{MODEL_VERSION}/ready",
                     "/v2/models/{MODEL_NAME}/versions/{MODEL_VERSION}/infer"}


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_answer_conforms_to_the_protocols_document(url: str, card: ModelCard, mode: GenerationMode) -> None:
    model = {"MODEL_NAME": card.name, "MODEL_VERSION": card.version}
    for operation in protocol_operations():
        if mode is GenerationMode.NEGATIVE and not operation.body:
            continue  # nothing but the (fixed) path parameters to make invalid

        @given(case=operation.as_strategy(generation_mode=mode, path_parameters=model if operation.path_parameters else None))
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
        def call_and_validate(case: schemathesis.Case) -> None:
            # A redirect is an answer too (GET /v2/ must not be sent elsewhere).
            case.call_and_validate(base_url=url, excluded_checks=[checks.positive_data_acceptance], allow_redirects=False)

        call_and_validate()
