"""Spec: schemathesis, driven by the service's own /openapi.json, finds no server error and no
response that breaks the schema, on every operation, with valid and invalid inputs. `make test`
runs a bounded number of examples; `make fuzz` (FUZZ_EXAMPLES=...) runs many more."""

from __future__ import annotations

import os

import schemathesis
from hypothesis import HealthCheck, settings

from online_inference.app.config import Settings
from online_inference.app.main import create_app
from online_inference.tests.helpers import bundled_session

APP = create_app(Settings(environment={}), loader=bundled_session)
APP.plane.load()  # the /predict body schema comes from the loaded card
# Invalid input is refused with 400, or 413 when it is too large (the service's contract).
CONFIG = schemathesis.Config.from_dict(
    {"checks": {"negative_data_rejection": {"expected-statuses": [400, 404, 405, 413, 415]}}}
)
SCHEMA = schemathesis.openapi.from_asgi("/openapi.json", APP, config=CONFIG)
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))


@SCHEMA.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_error_and_every_response_conforms(case: schemathesis.Case) -> None:
    case.call_and_validate()
