"""Spec: with ``API_KEYS_FILE``, every REST endpoint but the probes needs ``Authorization: Bearer
<key>`` of its group, against the real process, as an attacker would try: no key or a wrong one is
401 with ``WWW-Authenticate: Bearer``, a key of another group 403, both in the service's error
body, answered before the body is read; the right key 200. A path that reaches an endpoint
another way (case, slashes, a query string, HEAD, percent-encoding, dot segments, V2's versioned
paths, the docs) is no way around it, nor are header tricks (two headers, an empty token, another
scheme, the key in the query string), a pipelined request, or HTTP/1.0. The file is re-read when
it changes (a revoked key is refused within SECRETS_RECHECK_SECONDS; a bad file later keeps the
last good keys, loudly); a bad file at start stops the service with its line's number. /metrics
counts refusals by reason; with ACCESS_LOG the log names each authenticated call's key; it never
holds a key sent as one. (gRPC's side: tests/grpc/test_api_keys.py.)"""

from __future__ import annotations

import os
import re
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest

from online_inference.app.dataplane.access import key_line
from online_inference.bench.server import ROOT, Service, wait_healthy
from online_inference.tests.helpers import bundled_card, read_response, read_responses, valid_row, wait_until

CARD = bundled_card()
NAME, VERSION = CARD.name, CARD.version
ROW = valid_row(CARD)
PREDICT = orjson.dumps({"features": CARD.feature_names, "data": [ROW]})
V2_BODY = orjson.dumps({"inputs": [{"name": CARD.input_name, "shape": [1, len(ROW)], "datatype": "FP32", "data": ROW}]})
HOLDERS = {"inference": "clinic", "metadata": "catalog", "metrics": "prometheus"}  # each group's key's name
KEYS = {group: secrets.token_urlsafe(32) for group in HOLDERS}
URL_KEY = secrets.token_urlsafe(32)  # an inference key a client puts in a URL (where no key is read)
OTHER = {"inference": "metrics", "metadata": "inference", "metrics": "metadata"}  # a key of another group
RECHECK = 0.2  # SECRETS_RECHECK_SECONDS
ENDPOINTS = [  # (group, method, path, body)
    ("inference", "POST", "/predict", PREDICT), ("inference", "POST", "/explain", PREDICT),
    ("inference", "POST", f"/v2/models/{NAME}/infer", V2_BODY),
    ("inference", "POST", f"/v2/models/{NAME}/versions/{VERSION}/infer", V2_BODY),
    ("metadata", "GET", "/model", None), ("metadata", "GET", "/v2", None), ("metadata", "GET", f"/v2/models/{NAME}", None),
    ("metadata", "GET", f"/v2/models/{NAME}/versions/{VERSION}", None), ("metadata", "GET", "/docs", None),
    ("metadata", "GET", "/docs/oauth2-redirect", None), ("metadata", "GET", "/openapi.json", None),
    ("metadata", "GET", "/docs-assets/swagger-ui.css", None), ("metrics", "GET", "/metrics", None),
]
PROBES = ["/health", "/v2/health/live", "/v2/health/ready", f"/v2/models/{NAME}/ready", f"/v2/models/{NAME}/versions/{VERSION}/ready"]


def keys_text(keys: dict[str, str], url_key: bool = False) -> str:
    lines = [key_line(HOLDERS[group], key, group) for group, key in keys.items()]
    return "# name, digest, groups\n" + "".join(line + "\n" for line in lines + [key_line("in-a-url", URL_KEY, "inference")] * url_key)


def replace(path: Path, text: str) -> None:
    """A new file in place of the old one, as a Secret volume's update swaps it."""
    staged = path.with_suffix(".new")
    staged.write_text(text)
    os.replace(staged, path)


@dataclass
class KeyedService:
    service: Service
    keys_file: Path
    log: Path

    @property
    def url(self) -> str:
        return self.service.url

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def keyed_service(folder: Path, keys: str, **env: str) -> Iterator[KeyedService]:
    """``python -m online_inference.app`` with ``keys`` as its API_KEYS_FILE, its output kept in a
    file the test reads (at the info level), stopped with SIGTERM at the end."""
    keys_file, log = folder / "api_keys", folder / "service.log"
    keys_file.write_text(keys)
    with log.open("wb") as output:
        process = subprocess.Popen([sys.executable, "-m", "online_inference.app"], cwd=ROOT, stdout=output, stderr=subprocess.STDOUT,
                                   env={**os.environ, "PYTHONPATH": str(ROOT), "PORT": "0", "GRPC_PORT": "0", "LOG_LEVEL": "info",
                                        "API_KEYS_FILE": str(keys_file), "SECRETS_RECHECK_SECONDS": str(RECHECK), **env})
    try:
        port = wait_healthy(process, time.perf_counter() + 120)
        assert port is not None, log.read_text()
        yield KeyedService(Service("onnx", f"http://127.0.0.1:{port}", process, 0.0), keys_file, log)
    finally:
        process.terminate()
        process.wait(30)
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeyedService]:
    with keyed_service(tmp_path_factory.mktemp("keys"), keys_text(KEYS, url_key=True), ACCESS_LOG="true") as service:
        yield service


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def request(server: KeyedService, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
            query: str = "") -> httpx.Response:
    content_type = {"content-type": "application/json"} if body is not None else {}
    return httpx.request(method, server.url + path + query, content=body, headers={**content_type, **(headers or {})}, timeout=30)


def assert_refused(answer: httpx.Response, status: int) -> None:
    """The service's error body, and ``WWW-Authenticate: Bearer`` with a 401."""
    assert answer.status_code == status, (answer.status_code, answer.text[:200])
    assert answer.headers["content-type"] == "application/json" and set(answer.json()) == {"error"} and answer.json()["error"]
    assert answer.headers.get("www-authenticate") == ("Bearer" if status == 401 else None)


@pytest.mark.parametrize(("group", "method", "path", "body"), ENDPOINTS, ids=[f"{m} {p}" for _, m, p, _ in ENDPOINTS])
def test_each_endpoint_needs_a_key_of_its_group(server: KeyedService, group: str, method: str, path: str, body: bytes | None) -> None:
    assert_refused(request(server, method, path, body), 401)
    assert_refused(request(server, method, path, body, bearer(secrets.token_urlsafe(32))), 401)
    assert_refused(request(server, method, path, body, bearer(KEYS[OTHER[group]])), 403)
    assert request(server, method, path, body, bearer(KEYS[group])).status_code == 200


@pytest.mark.parametrize("path", PROBES)
def test_the_probes_need_no_key(server: KeyedService, path: str) -> None:
    assert request(server, "GET", path).status_code == 200


# A path that reaches (or seems to reach) an endpoint another way: refused without a key, and with
# a key what the application answers it (group: the key that gets that answer, whose own status).
OTHER_WAYS = [
    ("/PREDICT", "POST", PREDICT, "metrics", 404),
    ("/predict/", "POST", PREDICT, "metrics", 307),  # redirected to /predict, which needs its own key
    ("//predict", "POST", PREDICT, "metrics", 404),
    ("/%70redict", "POST", PREDICT, "inference", 200),  # uvicorn decodes it: /predict
    ("/%2Fpredict", "POST", PREDICT, "metrics", 404),
    ("/v2/health/live/../../../predict", "POST", PREDICT, "metrics", 404),  # dot segments are not resolved
    ("/predict?format=json", "POST", PREDICT, "inference", 200),
    (f"/v2/models/{NAME}/versions/{VERSION}/infer", "POST", V2_BODY, "inference", 200),
    (f"/v2/models/{NAME}/versions/9/infer", "POST", V2_BODY, "inference", 404),
    (f"/v2/models/{NAME}/Infer", "POST", V2_BODY, "metrics", 404),
    ("/v2/", "GET", None, "metadata", 200),
    ("/Model", "GET", None, "metrics", 404),
    ("/metrics/", "GET", None, "metrics", 307),
    ("/health/", "GET", None, "metrics", 307),  # a probe's own path only is open
    ("/docs-assets/swagger-ui-bundle.js", "GET", None, "metadata", 200),
    ("/docs-assets/../openapi.json", "GET", None, "metadata", 404),
    ("/docs-assets/%2e%2e/openapi.json", "GET", None, "metadata", 404),
]


@pytest.mark.parametrize(("path", "method", "body", "group", "status"), OTHER_WAYS, ids=[w[0] for w in OTHER_WAYS])
def test_no_path_is_a_way_around_the_key(server: KeyedService, path: str, method: str, body: bytes | None, group: str,
                                         status: int) -> None:
    assert raw_status(server, method, path, body) == 401
    assert raw_status(server, method, path, body, f"Bearer {KEYS[group]}") == status


def test_head_needs_the_key_of_its_get(server: KeyedService) -> None:
    for path in ("/model", "/metrics", "/openapi.json"):
        answer = raw(server, f"HEAD {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode(), head_only=True)
        assert answer.startswith(b"HTTP/1.1 401 ") and b"\r\nwww-authenticate: Bearer\r\n" in answer, answer
    group = {"/model": "metadata", "/metrics": "metrics"}
    for path, key_group in group.items():
        answer = raw(server, f"HEAD {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEYS[key_group]}\r\n\r\n".encode(), head_only=True)
        assert answer.startswith(b"HTTP/1.1 200 "), answer


def raw(server: KeyedService, data: bytes, head_only: bool = False) -> bytes:
    """One request's bytes sent as they are; its whole answer (``head_only``: a HEAD's, no body)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(data)
        if not head_only:
            return read_response(sock)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            assert chunk, received
            received += chunk
        return received


def raw_status(server: KeyedService, method: str, target: str, body: bytes | None = None, *authorization: str) -> int:
    lines = [f"{method} {target} HTTP/1.1", "Host: x", *(f"Authorization: {value}" for value in authorization)]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    answer = raw(server, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b""))
    return int(answer.split(b" ", 2)[1])


HEADER_TRICKS = [  # (Authorization values as sent, the status /predict answers)
    (["Bearer {key}"], 200), (["bearer {key}"], 200), (["BEARER {key}"], 200), (["Bearer    {key}"], 200),
    (["\tBearer {key}\t "], 200),  # the whitespace around a field value is not part of it (RFC 9110 §5.5)
    (["Bearer\t{key}"], 401),  # between the scheme and the token: spaces only (RFC 9110 §11.4)
    (["Bearer {key}", "Bearer {key}"], 401), (["Bearer {key}", "Bearer {other}"], 401), (["Bearer {other}", "Bearer {key}"], 401),
    (["Bearer {key},Bearer {key}"], 401), ([""], 401), (["Bearer"], 401), (["Bearer "], 401), (["{key}"], 401),
    (["Basic {key}"], 401), (["Token {key}"], 401), (["Bearer {key} extra"], 401), (["Bearer {key}x"], 401),
    (["Bearer {key}=="], 401),
]


@pytest.mark.parametrize(("values", "status"), HEADER_TRICKS, ids=[repr(values) for values, _ in HEADER_TRICKS])
def test_header_tricks_get_no_further_than_the_key(server: KeyedService, values: list[str], status: int) -> None:
    given = [value.format(key=KEYS["inference"], other=KEYS["metrics"]) for value in values]
    assert raw_status(server, "POST", "/predict", PREDICT, *given) == status


@pytest.mark.parametrize("query", ["?api_key={key}", "?access_token={key}", "?authorization=Bearer%20{key}", "?key={key}"])
def test_a_key_in_the_query_string_is_no_key(server: KeyedService, query: str) -> None:
    assert_refused(request(server, "POST", "/predict", PREDICT, query=query.format(key=URL_KEY)), 401)
    assert request(server, "POST", "/predict", PREDICT, bearer(URL_KEY)).status_code == 200  # a key, in its header


def test_other_headers_carry_no_key(server: KeyedService) -> None:
    for name in ("X-API-Key", "Proxy-Authorization", "Api-Key"):
        assert_refused(request(server, "POST", "/predict", PREDICT, {name: KEYS["inference"]}), 401)
        assert_refused(request(server, "POST", "/predict", PREDICT, {name: f"Bearer {KEYS['inference']}"}), 401)


def predict_bytes(*headers: str, version: str = "1.1") -> bytes:
    lines = [f"POST /predict HTTP/{version}", "Host: x", "Content-Type: application/json", f"Content-Length: {len(PREDICT)}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + PREDICT


def test_a_pipelined_request_without_a_key_is_refused_after_one_with_a_key(server: KeyedService) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(predict_bytes(f"Authorization: Bearer {KEYS['inference']}") + predict_bytes()
                     + predict_bytes(f"Authorization: Bearer {KEYS['metrics']}") + predict_bytes(f"Authorization: Bearer {KEYS['inference']}"))
        statuses = [answer.split(b" ", 2)[1] for answer in read_responses(sock, 4)]
    assert statuses == [b"200", b"401", b"403", b"200"]


def test_http_1_0_needs_the_key_too(server: KeyedService) -> None:
    for headers, status in (((), b"401"), ((f"Authorization: Bearer {KEYS['inference']}",), b"200")):
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(predict_bytes(*headers, version="1.0"))
            answer = b""
            while chunk := sock.recv(65536):  # HTTP/1.0: the server closes after its answer
                answer += chunk
        assert answer.split(b" ", 2)[1] == status, answer[:200]


def large_head(*headers: str) -> bytes:
    lines = ["POST /predict HTTP/1.1", "Host: x", "Content-Type: application/json", "Content-Length: 1000000", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_a_refused_large_body_is_answered_unread_and_the_connection_serves_the_next_request(server: KeyedService) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(large_head())
        answer = read_response(sock)  # before a byte of the body was sent
        assert answer.startswith(b"HTTP/1.1 401 ") and b"connection: close" not in answer.lower(), answer
        sock.sendall(b" " * 1_000_000 + b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")  # the body (dropped), then the next request
        assert read_response(sock).startswith(b"HTTP/1.1 200 ")


def test_a_refused_chunked_body_is_answered_before_it_comes_and_dropped(server: KeyedService) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        assert read_response(sock).startswith(b"HTTP/1.1 401 ")
        sock.sendall(b"".join(b"10000\r\n" + b" " * 65536 + b"\r\n" for _ in range(16)) + b"0\r\n\r\n"
                     + b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock).startswith(b"HTTP/1.1 200 ")


@pytest.mark.parametrize("close", ["Connection: close", "HTTP/1.0"])
def test_a_refused_large_body_on_a_closing_connection_ends_cleanly(server: KeyedService, close: str) -> None:
    """Answered before the body is read; what the client still sends is read and dropped, then the
    connection closes: no reset, which would lose the answer of a client still sending."""
    head = large_head("Connection: close") if close != "HTTP/1.0" else large_head().replace(b"HTTP/1.1", b"HTTP/1.0", 1)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head)
        answer = read_response(sock)
        assert answer.startswith(b"HTTP/1.1 401 ") and b"connection: close" in answer.lower(), answer
        sock.sendall(b" " * 1_000_000)
        assert sock.recv(65536) == b""  # the server's FIN, after it read the body: not a reset
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head + b" " * 1_000_000)  # the whole request in one write, the body unread when answered
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    assert received.startswith(b"HTTP/1.1 401 ") and received.count(b"HTTP/1.1") == 1, received[:300]


def test_metrics_count_refusals_by_reason(server: KeyedService) -> None:
    def refusals(reason: str) -> float:
        return metric_value_with(server, "api_key_refusals_total", reason=reason, protocol="rest")

    before = {reason: refusals(reason) for reason in ("missing", "malformed", "unknown", "forbidden")}
    request(server, "GET", "/model")
    request(server, "GET", "/model", headers={"authorization": "Basic x"})
    request(server, "GET", "/model", headers=bearer("not-a-key"))
    request(server, "GET", "/model", headers=bearer("not-a-key"))
    request(server, "GET", "/model", headers=bearer(KEYS["metrics"]))
    assert {reason: refusals(reason) - before[reason] for reason in before} == {"missing": 1, "malformed": 1, "unknown": 2, "forbidden": 1}


def metric_value_with(server: KeyedService, name: str, **labels: str) -> float:
    """:func:`helpers.metric_value`, scraped with the metrics group's key."""
    from prometheus_client.parser import text_string_to_metric_families

    text = request(server, "GET", "/metrics", headers=bearer(KEYS["metrics"])).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def test_with_access_log_each_authenticated_call_is_logged_by_its_keys_name(server: KeyedService) -> None:
    request(server, "POST", "/predict", PREDICT, bearer(KEYS["inference"]))
    request(server, "GET", f"/v2/models/{NAME}", headers=bearer(KEYS["metadata"]))
    wait_until(lambda: "api key 'catalog': GET /v2/models/" in server.output(), 5)
    assert "online_inference.access: api key 'clinic': POST /predict" in server.output()
    assert not re.search(r"api key '\w+': GET /health$", server.output(), re.M)  # a probe needs no key: no line


def test_a_revoked_key_is_refused_within_the_recheck_and_a_bad_file_keeps_the_last_good_keys(tmp_path: Path) -> None:
    kept, revoked = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    lines = key_line("kept", kept, "inference") + "\n" + key_line("revoked", revoked, "inference") + "\n"
    with keyed_service(tmp_path, lines) as service:
        assert request(service, "POST", "/predict", PREDICT, bearer(revoked)).status_code == 200
        replace(service.keys_file, key_line("kept", kept, "inference") + "\n")
        revoked_at = time.monotonic()
        wait_until(lambda: request(service, "POST", "/predict", PREDICT, bearer(revoked)).status_code == 401, 5, interval=0.02)
        assert time.monotonic() - revoked_at < RECHECK + 1  # the next request after a recheck reads it
        replace(service.keys_file, key_line("kept", kept, "inference") + "\nrevoked sha256:abc inference\n")
        wait_until(lambda: request(service, "POST", "/predict", PREDICT, bearer(kept)).status_code == 200
                   and "API keys not reloaded, keeping the 1 last good ones" in service.output(), 5)  # (read on a request)
        assert "api_keys line 2: expected sha256:<64 hex digits> after the name" in service.output()
        assert request(service, "POST", "/predict", PREDICT, bearer(kept)).status_code == 200
        assert request(service, "POST", "/predict", PREDICT, bearer(revoked)).status_code == 401
        replace(service.keys_file, lines)  # fixed: read again, the key back
        wait_until(lambda: request(service, "POST", "/predict", PREDICT, bearer(revoked)).status_code == 200, 5, interval=0.02)
        assert kept not in service.output() and revoked not in service.output()
        assert "online_inference.access" not in service.output()  # no ACCESS_LOG: no line per call


@pytest.mark.parametrize(("bad", "said"), [
    ("clinic sha256:{digest} inference,admin", "line 3: unknown groups ['admin']"),
    ("clinic {digest} inference", "line 3: expected sha256:<64 hex digits> after the name"),
    ("catalog sha256:{digest} metadata", "line 3: the name 'catalog' is given twice"),
    ("cli nic sha256:{digest} inference", "line 3: expected three fields"),
], ids=["group", "digest", "twice", "fields"])
def test_a_bad_file_at_start_stops_the_service_with_the_lines_number(tmp_path: Path, bad: str, said: str) -> None:
    keys = tmp_path / "api_keys"
    keys.write_text(keys_text({"metadata": KEYS["metadata"]}) + bad.format(digest="ab" * 32) + "\n")
    started = subprocess.run([sys.executable, "-m", "online_inference.app"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                             env={**os.environ, "PYTHONPATH": str(ROOT), "PORT": "0", "GRPC_PORT": "0", "API_KEYS_FILE": str(keys)})
    assert started.returncode == 1 and f"heart-online-inference: {keys} {said}" in started.stderr, started.stderr[-2000:]
    assert "Traceback" not in started.stderr


def test_a_missing_file_at_start_stops_the_service(tmp_path: Path) -> None:
    started = subprocess.run([sys.executable, "-m", "online_inference.app"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                             env={**os.environ, "PYTHONPATH": str(ROOT), "PORT": "0", "GRPC_PORT": "0",
                                  "API_KEYS_FILE": str(tmp_path / "absent")})
    assert started.returncode == 1 and f"{tmp_path / 'absent'}: No such file or directory" in started.stderr, started.stderr[-2000:]
    assert "Traceback" not in started.stderr


def test_no_key_is_ever_logged(server: KeyedService) -> None:
    """Last in the module: every request above has been logged (ACCESS_LOG, at the info level). A
    key put in a URL is logged as URLs are: uvicorn's access line holds the request target."""
    request(server, "POST", "/predict", PREDICT, bearer(KEYS["inference"]))
    output = server.output()
    assert "api key 'clinic'" in output and "api key 'in-a-url'" in output
    assert [group for group, key in KEYS.items() if key in output] == []
    assert {line.split('"')[1].split("?")[0] for line in output.splitlines() if URL_KEY in line} == {"POST /predict"}
