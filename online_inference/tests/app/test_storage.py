"""Spec: MODEL_URI may name s3://, http(s)://, file:// or a path. The server answers at once,
/health goes 503 "loading" → 200; a wrong sha256, a missing key or a 404 end in 503 "failed" with
the reason; a store that comes up late is retried; credentials never reach the logs; the cache
keeps no partial download (a failed one removes its file, the next fetch sweeps an interrupted
one's) and no artifact it no longer uses."""

from __future__ import annotations

import hashlib
import http.server
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from online_inference.app.settings import BUNDLED_MODEL, Settings
from online_inference.app.compose import create_app
from online_inference.app.model.storage import FetchPolicy, StorageError, cached_path, fetch_model, redact
from online_inference.docker.dockercli import free_port
from online_inference.tests.helpers import bundled_card, loaded, valid_row, wait_until
from online_inference.tests.stores import moto_s3

BUCKET, KEY = f"models-{uuid.uuid4().hex[:8]}", "heart/v1/heart.onnx"  # moto's state is per process
SECRET = "s3cr3t-never-logged"
MODEL_BYTES = BUNDLED_MODEL.read_bytes()
MODEL_SHA256 = hashlib.sha256(MODEL_BYTES).hexdigest()


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with moto_s3(secret=SECRET, bucket=BUCKET) as (endpoint, s3):
        s3.put_object(Bucket=BUCKET, Key=KEY, Body=MODEL_BYTES)
        yield endpoint


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, s3_endpoint: str) -> str:
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    return s3_endpoint


def settings_for(uri: str, tmp_path: Path, **extra: object) -> Settings:
    options: dict[str, object] = {"MODEL_CACHE_DIR": tmp_path / "cache", "MODEL_LOAD_BACKOFF_SECONDS": 0.05, **extra}
    return Settings(MODEL_URI=uri, **options)


def predictions(client: TestClient) -> list[dict]:
    card = bundled_card()
    rows = [valid_row(card), [f.training.max for f in card.features]]
    return client.post("/predict", json={"features": card.feature_names, "data": rows}).json()["predictions"]


def test_model_from_s3_serves_like_the_bundled_one(aws_env: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    with TestClient(create_app(Settings(environment={}))) as bundled:
        assert loaded(bundled.app.plane, 10)
        expected = predictions(bundled)
    app = create_app(settings_for(f"s3://{BUCKET}/{KEY}", tmp_path, MODEL_SHA256=MODEL_SHA256))
    with TestClient(app) as client:
        assert loaded(app.plane, 30)
        health = client.get("/health")
        assert health.status_code == 200 and health.json()["model"]["sha256"] == MODEL_SHA256
        assert predictions(client) == expected
    assert f"fetched model s3://{BUCKET}/{KEY}" in caplog.text
    assert SECRET not in caplog.text
    assert not list((tmp_path / "cache").glob(".part-*")), "no partial download is left behind"


def test_health_is_503_loading_while_the_download_runs(aws_env: str, tmp_path: Path) -> None:
    gate = threading.Event()
    import online_inference.app.dataplane.plane as dataplane

    original = dataplane.fetch_model

    def gated_fetch(*args, **kwargs):  # type: ignore[no-untyped-def]
        gate.wait(10)
        return original(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dataplane, "fetch_model", gated_fetch)
        app = create_app(settings_for(f"s3://{BUCKET}/{KEY}", tmp_path))
        with TestClient(app) as client:
            assert client.get("/health").json() == {"status": "loading"}
            assert client.get("/health").status_code == 503
            gate.set()
            assert loaded(app.plane, 30)
            assert client.get("/health").status_code == 200


def test_wrong_sha256_fails_and_never_serves(aws_env: str, tmp_path: Path) -> None:
    app = create_app(settings_for(f"s3://{BUCKET}/{KEY}", tmp_path, MODEL_SHA256="0" * 64))
    with TestClient(app) as client:
        assert loaded(app.plane, 30)
        body = client.get("/health").json()
        assert body["status"] == "failed" and "sha256 mismatch" in body["reason"]
        card = bundled_card()
        assert client.post("/predict", json={"features": card.feature_names, "data": [valid_row(card)]}).status_code == 503


def test_missing_key_fails_at_once_with_the_reason(aws_env: str, tmp_path: Path) -> None:
    app = create_app(settings_for(f"s3://{BUCKET}/absent.onnx", tmp_path, MODEL_LOAD_ATTEMPTS=5))
    started = time.monotonic()
    with TestClient(app) as client:
        assert loaded(app.plane, 30)
        body = client.get("/health").json()
    assert body["status"] == "failed" and "HTTP 404" in body["reason"] and "attempt 1 of 5" in body["reason"]
    assert time.monotonic() - started < 5, "a 404 is not retried"


def test_unsigned_request_is_refused_with_the_reason(aws_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    with pytest.raises(StorageError, match="HTTP 403"):
        fetch_model(f"s3://{BUCKET}/{KEY}", FetchPolicy(attempts=3, cache_dir=tmp_path))


def test_store_down_at_start_recovers_within_the_retry_window(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    port = free_port()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    app = create_app(settings_for(f"s3://{BUCKET}/{KEY}", tmp_path, MODEL_LOAD_ATTEMPTS=8, MODEL_LOAD_BACKOFF_SECONDS=0.2))
    with TestClient(app) as client:
        wait_until(lambda: any("retry 1 of 7" in r.getMessage() for r in caplog.records), timeout=10)  # a download failed
        assert client.get("/health").json()["status"] == "loading"
        with moto_s3(secret=SECRET, port=port, bucket=BUCKET) as (_, s3):
            s3.put_object(Bucket=BUCKET, Key=KEY, Body=MODEL_BYTES)
            assert loaded(app.plane, 30)
            assert client.get("/health").status_code == 200


def test_store_that_stays_down_fails_after_the_last_attempt(tmp_path: Path) -> None:
    uri = f"http://127.0.0.1:{free_port()}/heart.onnx"
    with pytest.raises(StorageError, match="attempt 3 of 3"):
        fetch_model(uri, FetchPolicy(attempts=3, backoff_seconds=0.01, cache_dir=tmp_path))


class ModelHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path.split("?")[0] == "/models/heart.onnx":
            self.send_response(200)
            self.send_header("Content-Length", str(len(MODEL_BYTES)))
            self.end_headers()
            self.wfile.write(MODEL_BYTES)
        elif self.path == "/models/cut.onnx":  # the connection drops halfway through the body
            self.send_response(200)
            self.send_header("Content-Length", str(len(MODEL_BYTES)))
            self.end_headers()
            self.wfile.write(MODEL_BYTES[: len(MODEL_BYTES) // 2])
            self.close_connection = True
        else:
            self.send_error(404)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def http_url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ModelHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_http_200_serves_and_404_fails(http_url: str, tmp_path: Path) -> None:
    app = create_app(settings_for(f"{http_url}/models/heart.onnx?token=abc", tmp_path))
    with TestClient(app) as client:
        assert loaded(app.plane, 30)
        assert client.get("/health").status_code == 200
    app = create_app(settings_for(f"{http_url}/models/absent.onnx", tmp_path))
    with TestClient(app) as client:
        assert loaded(app.plane, 30)
        body = client.get("/health").json()
        assert body["status"] == "failed" and "HTTP 404" in body["reason"]


def test_a_download_cut_halfway_fails_with_the_reason_and_leaves_no_partial_file(http_url: str, tmp_path: Path) -> None:
    policy = FetchPolicy(attempts=2, backoff_seconds=0.01, cache_dir=tmp_path)
    with pytest.raises(StorageError, match="attempt 2 of 2"):
        fetch_model(f"{http_url}/models/cut.onnx", policy)
    assert list(tmp_path.iterdir()) == []


def test_a_fetch_sweeps_what_earlier_ones_left_and_keeps_what_may_still_be_written(http_url: str, tmp_path: Path) -> None:
    """An interrupted download's partial file and an artifact no longer used go, once untouched for
    the fetch timeout; a partial file written just now (another process's download) stays."""
    import os

    policy = FetchPolicy(timeout_seconds=30, cache_dir=tmp_path)
    interrupted, unused, live = tmp_path / ".part-interrupted", tmp_path / ("0" * 32), tmp_path / ".part-live"
    for path in (interrupted, unused, live):
        path.write_bytes(b"x" * 1000)
    for path in (interrupted, unused):
        os.utime(path, (time.time() - 31, time.time() - 31))
    url = f"{http_url}/models/heart.onnx"
    assert fetch_model(url, policy) == MODEL_BYTES
    assert set(tmp_path.iterdir()) == {live, cached_path(url, policy)}


def test_file_uri_and_plain_path(tmp_path: Path) -> None:
    policy = FetchPolicy(cache_dir=tmp_path)
    assert fetch_model(f"file://{BUNDLED_MODEL}", policy) == MODEL_BYTES
    assert fetch_model(str(BUNDLED_MODEL), policy) == MODEL_BYTES
    with pytest.raises(StorageError, match="unsupported MODEL_URI scheme"):
        fetch_model("ftp://host/model.onnx", policy)


def test_redact_drops_credentials_and_query() -> None:
    assert redact("https://user:pw@host:9000/m.onnx?X-Amz-Signature=abc") == "https://host:9000/m.onnx"
    assert redact("s3://bucket/key.onnx") == "s3://bucket/key.onnx"
