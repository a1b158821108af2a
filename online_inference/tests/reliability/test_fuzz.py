"""Spec: schemathesis, driven by the service's own /openapi.json, finds no server error and no
response that breaks the schema, on every operation, with valid and invalid inputs. `make test`
runs a bounded number of examples; `make fuzz` (FUZZ_EXAMPLES=...) runs many more.

The schema comes from the app, which a fixture builds: nothing is built at import. (schemathesis's
own lazy loader, ``schemathesis.pytest.from_fixture``, reads pytest's private ``Node._nodeid``,
which pytest 9 no longer has.)"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.schemas import APIOperation

from online_inference.app.settings import Settings
from online_inference.app.compose import create_app
from online_inference.tests.helpers import bundled_session

# Invalid input is refused with 400, or 413 when it is too large (the service's contract).
CONFIG = {"checks": {"negative_data_rejection": {"expected-statuses": [400, 404, 405, 413, 415]}}}
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))


@pytest.fixture(scope="module")
def operations() -> Iterator[list[APIOperation]]:
    app = create_app(Settings(environment={}), loader=bundled_session)
    app.plane.load()  # the /predict body schema comes from the loaded card
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=schemathesis.Config.from_dict(CONFIG))
    yield [result.ok() for result in schema.get_all_operations()]


def fuzz(operation: APIOperation, mode: GenerationMode) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    def call_and_validate(case: schemathesis.Case) -> None:
        case.call_and_validate()

    call_and_validate()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_server_error_and_every_response_conforms(operations: list[APIOperation], mode: GenerationMode) -> None:
    assert len(operations) >= 8, [operation.label for operation in operations]
    for operation in operations:
        if mode is GenerationMode.POSITIVE or takes_input(operation):
            fuzz(operation, mode)


def takes_input(operation: APIOperation) -> bool:
    """Whether invalid input can be made for it: GET /health takes none, and any string is a valid
    path parameter (``{name}``)."""
    return any(map(len, (operation.body, operation.query, operation.headers)))
