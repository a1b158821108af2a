"""Spec: with API keys on, the OpenAPI document declares the bearer scheme
(``components.securitySchemes.bearer``) and, on each operation that needs a key, ``security`` and
the key's group (``x-api-key-group``, and in its description), with its 401 and 403; the probes
declare none; without keys the document declares no security. In Chromium, Swagger UI's
"Authorize" then works as a user would use it: authorize with a key of the inference group,
execute ``POST /predict`` with its example, get 200; without authorizing, 401 with the server's
reason; with a key of another group, 403.

How the browser reads the documentation at all: ``/docs``, its assets and ``/openapi.json`` need a
key of the metadata group, and a browser cannot put a header on a page load. A user puts a proxy
in front of the documentation that adds a metadata key to its requests (what an ingress or
``mitmproxy --modify-headers`` does); :func:`docs_proxy` is that proxy here. It adds a key with
the metadata group only, and only to the documentation's own requests: every other request
(``/predict`` from "Try it out") goes through untouched, with whatever Swagger UI sent."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from online_inference.app.dataplane.access import ANY_KEY
from online_inference.app.compose import REST_GROUPS
from online_inference.app.settings import Settings
from online_inference.tests.browser import Page
from online_inference.tests.helpers import live_server

pytestmark = pytest.mark.slow

KEYS = {"triage": (secrets.token_urlsafe(24), "inference,metadata"), "docs": (secrets.token_urlsafe(24), "metadata")}
DOCS = re.compile(r"/docs(/.*)?|/docs-assets/.*|/openapi\.json")  # what the page load itself asks for
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "host"}


def keys_file(directory: Path) -> Path:
    path = directory / "api-keys"
    path.write_text("".join(f"{name} sha256:{hashlib.sha256(key.encode()).hexdigest()} {groups}\n"
                            for name, (key, groups) in KEYS.items()))
    return path


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The service with API keys on."""
    settings = Settings(environment={"API_KEYS_FILE": str(keys_file(tmp_path_factory.mktemp("keys")))})
    with live_server(settings=settings) as base:
        yield base


def proxy_handler(client: httpx.Client, docs_key: str) -> type[BaseHTTPRequestHandler]:
    """Requests forwarded with ``client`` (to the service); the documentation's own get ``docs_key``
    as a Bearer token."""

    class Forward(BaseHTTPRequestHandler):
        def forward(self) -> None:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            if DOCS.fullmatch(self.path.split("?", 1)[0]):
                headers["Authorization"] = f"Bearer {docs_key}"
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            answer = client.request(self.command, self.path, headers=headers, content=body)
            self.send_response(answer.status_code)
            for name, value in answer.headers.multi_items():
                if name.lower() not in HOP_BY_HOP:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.content)))
            self.end_headers()
            self.wfile.write(answer.content)

        do_GET = do_POST = do_HEAD = forward

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: pytest shows what a failing test needs."""

    return Forward


@contextmanager
def docs_proxy(upstream: str, docs_key: str) -> Iterator[str]:
    """A proxy in front of ``upstream`` that gives the documentation's requests a metadata key; its URL."""
    with httpx.Client(base_url=upstream, timeout=30) as client:
        server = ThreadingHTTPServer(("127.0.0.1", 0), proxy_handler(client, docs_key))
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()
            server.server_close()
            thread.join(10)


@pytest.fixture(scope="module")
def proxied(url: str) -> Iterator[str]:
    with docs_proxy(url, KEYS["docs"][0]) as base:
        yield base


def document(url: str) -> dict:  # type: ignore[type-arg]
    response = httpx.get(url + "/openapi.json", headers={"Authorization": f"Bearer {KEYS['docs'][0]}"})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_the_document_declares_the_bearer_scheme_and_each_operations_group(url: str) -> None:
    spec = document(url)
    assert spec["components"]["securitySchemes"] == {"bearer": {"type": "http", "scheme": "bearer"}}
    for path, operations in spec["paths"].items():
        group = REST_GROUPS.group_of(path)
        for operation in operations.values():
            if group is None:  # a probe: open to all
                assert "security" not in operation and "x-api-key-group" not in operation, path
                continue
            assert operation["security"] == [{"bearer": []}] and operation["x-api-key-group"] == group, path
            assert (f"`{group}`" if group != ANY_KEY else "any known API key") in operation["description"], path
            assert {"401", "403"} <= set(operation["responses"]), path


def test_the_probes_and_the_groups_are_the_ones_the_protocols_declare(url: str) -> None:
    paths = document(url)["paths"]
    groups = {path: next(iter(operations.values())).get("x-api-key-group") for path, operations in paths.items()}
    assert groups["/predict"] == groups["/explain"] == groups["/v2/models/{name}/infer"] == "inference"
    assert groups["/model"] == groups["/v2/models/{name}"] == "metadata" and groups["/metrics"] == "metrics"
    assert groups["/health"] is groups["/v2/health/ready"] is groups["/v2/models/{name}/ready"] is None


def test_without_keys_the_document_declares_no_security() -> None:
    with live_server() as base:
        spec = httpx.get(base + "/openapi.json").json()
    assert "securitySchemes" not in spec.get("components", {})
    assert not [path for path, operations in spec["paths"].items() for o in operations.values() if "security" in o]


def test_the_page_load_needs_the_proxys_metadata_key(url: str, proxied: str) -> None:
    assert httpx.get(url + "/openapi.json").status_code == 401  # straight to the service: no key
    assert httpx.get(proxied + "/openapi.json").json()["paths"]  # through the proxy: the docs key
    assert httpx.post(proxied + "/predict", json={}).status_code == 401  # which goes with nothing else


# --- Swagger UI in Chromium ------------------------------------------------------------------

PREDICT = "[...document.querySelectorAll('.opblock')].find(b => b.querySelector('[data-path=\"/predict\"]'))"


def open_docs(page: Page, base: str) -> None:
    page.goto(base + "/docs")
    page.wait_for(PREDICT)


def authorize(page: Page, key: str) -> None:
    """Authorize → the bearer field → Authorize → Close, as a user clicks them."""
    page.click(".auth-wrapper .btn.authorize")
    page.type(".modal-ux input[aria-label='auth-bearer-value']", key)
    page.click(".modal-ux .auth-btn-wrapper .btn.authorize")
    page.wait_for("document.querySelector('.modal-ux .auth-btn-wrapper .btn-done')")  # authorized: Logout and Close
    page.click(".modal-ux .auth-btn-wrapper .btn-done")


def execute_predict(page: Page) -> tuple[int, str]:
    """Open POST /predict, Try it out, Execute with the example body; the status and body Swagger UI shows."""
    page.evaluate(f"{PREDICT}.querySelector('.opblock-summary-control').click()")
    page.wait_for(f"{PREDICT}.querySelector('.try-out__btn')")
    page.evaluate(f"{PREDICT}.querySelector('.try-out__btn').click()")
    page.wait_for(f"{PREDICT}.querySelector('textarea.body-param__text')?.value")
    page.evaluate(f"{PREDICT}.querySelector('.btn.execute').click()")
    live = f"{PREDICT}.querySelector('.live-responses-table .response .response-col_status')"
    status = page.wait_for(f"{live}?.textContent.trim()")
    body = page.evaluate(f"{PREDICT}.querySelector('.live-responses-table .response-col_description pre')?.textContent")
    return int(status.split()[0]), body or ""


def test_authorized_swagger_ui_executes_predict(proxied: str) -> None:
    with Page() as page:
        open_docs(page, proxied)
        authorize(page, KEYS["triage"][0])
        status, body = execute_predict(page)
        page.screenshot("docs-authorized-predict.png")
    assert status == 200, body
    assert len(json.loads(body)["predictions"]) == 1


def test_without_authorizing_predict_is_refused_with_401(proxied: str) -> None:
    with Page() as page:
        open_docs(page, proxied)
        status, body = execute_predict(page)
    assert status == 401 and "API key" in json.loads(body)["error"], body


def test_authorized_with_a_key_of_another_group_predict_is_refused_with_403(proxied: str) -> None:
    with Page() as page:
        open_docs(page, proxied)
        authorize(page, KEYS["docs"][0])
        status, body = execute_predict(page)
    assert status == 403 and "'docs' may not call inference endpoints" in json.loads(body)["error"], body
