"""Spec (#34): the poll (``MODEL_POLL_SECONDS``), against the real process, ``MODEL_URI`` on an HTTP
store in the test. With ETags, an unchanged artifact costs a HEAD a poll and no download (after the
first poll's, which checks the bytes once); a changed one is downloaded and swapped in, named by
``/health`` and counted (``model_loads_total{trigger="poll"}``). Without ETags each poll downloads
the artifact (after a HEAD that finds no ETag) and compares its sha256. A changed artifact that fails its checks is tried once, the
model served unchanged. Off by default: no HEAD, no GET after the start."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from online_inference.app.settings import BUNDLED_MODEL
from online_inference.bench.server import serve
from online_inference.tests.helpers import metric_value, wait_until
from online_inference.tests.stores import GARBAGE, ModelStore, bundled_bytes_with

V1 = BUNDLED_MODEL.read_bytes()
V2 = bundled_bytes_with(version="2.0.0")
POLL_SECONDS = 0.2


@pytest.fixture(params=[True, False], ids=["etags", "no-etags"])
def store(request: pytest.FixtureRequest) -> Iterator[ModelStore]:
    with ModelStore(etags=request.param).running() as running:
        running.put("/heart.onnx", V1)
        yield running


def version(url: str) -> str:
    return str(httpx.get(url + "/health").json().get("model", {}).get("version"))


def test_the_poll_swaps_a_changed_artifact_in(store: ModelStore) -> None:
    env = {"MODEL_URI": f"{store.url}/heart.onnx", "MODEL_POLL_SECONDS": str(POLL_SECONDS)}
    with serve("onnx", env=env) as service:
        url = service.url
        wait_until(lambda: store.heads.get("/heart.onnx", 0) >= 3 or store.gets.get("/heart.onnx", 0) >= 3, timeout=10)
        gets = store.gets["/heart.onnx"]
        time.sleep(5 * POLL_SECONDS)  # pacing: polls of an unchanged artifact
        if store.etags:
            assert store.gets["/heart.onnx"] == gets == 2, "with ETags, no download while the artifact is the same"
            assert store.heads["/heart.onnx"] >= 5
        else:
            assert store.gets["/heart.onnx"] >= gets + 3, "without ETags, each poll downloads the artifact"
        assert version(url) == "1.0.0" and metric_value(url, "model_loads_total", trigger="poll", result="ok") == 0
        store.put("/heart.onnx", V2)
        wait_until(lambda: version(url) == "2.0.0", timeout=10)
        body = httpx.get(url + "/health").json()
        assert body["last_load"]["trigger"] == "poll" and body["last_load"]["result"] == "ok", body
        assert metric_value(url, "model_loads_total", trigger="poll", result="ok") == 1
        store.put("/heart.onnx", GARBAGE)
        wait_until(lambda: metric_value(url, "model_loads_total", trigger="poll", result="failed") == 1, timeout=10)
        time.sleep(5 * POLL_SECONDS)  # pacing: polls of the refused artifact, not tried again
        assert metric_value(url, "model_loads_total", trigger="poll", result="failed") == 1
        body = httpx.get(url + "/health").json()
        assert body["model"]["version"] == "2.0.0" and "not a loadable ONNX model" in body["last_load"]["reason"], body


def test_no_poll_by_default() -> None:
    with ModelStore().running() as store:
        store.put("/heart.onnx", V1)
        with serve("onnx", env={"MODEL_URI": f"{store.url}/heart.onnx"}):
            time.sleep(1)  # pacing: a while without a poll
            assert (store.gets, store.heads) == ({"/heart.onnx": 1}, {})
