"""Spec: the server's protocol tells each request how many requests are in progress (its own
included), live; the hot path calls the model at once for a request alone, and lets requests in
company share calls."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import httpx
import numpy as np
from fastapi import FastAPI

from online_inference.app.dataplane import DataPlane
from online_inference.app.hotpath import is_alone
from online_inference.app.protocol import IN_PROGRESS, ServiceProtocol
from online_inference.tests.helpers import live_server, model_calls, valid_row


async def counting_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers how many requests are in progress; ``/hold`` answers only after a short wait."""
    if scope["type"] != "http":
        return
    if scope["path"] == "/hold":
        await asyncio.sleep(0.5)
    body = str(len(scope["extensions"][IN_PROGRESS])).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def test_each_request_is_told_how_many_requests_are_in_progress() -> None:
    with live_server(counting_app, ready_path=None, http=ServiceProtocol) as url:
        assert [httpx.get(url + "/count").text for _ in range(3)] == ["1", "1", "1"]
        held = threading.Thread(target=lambda: httpx.get(url + "/hold"))
        held.start()
        try:
            time.sleep(0.2)
            assert httpx.get(url + "/count").text == "2"
        finally:
            held.join()


def test_a_request_is_alone_only_when_the_server_says_so() -> None:
    assert is_alone({"extensions": {IN_PROGRESS: {"this request"}}})
    assert not is_alone({"extensions": {IN_PROGRESS: {"this request", "another"}}})
    assert not is_alone({})  # another server: requests may share calls


def test_a_request_alone_calls_the_model_at_once(ready_app: FastAPI) -> None:
    plane: DataPlane = ready_app.state.dataplane
    served = plane.served
    assert served is not None
    X = np.array([valid_row(served.card)], dtype=np.float32)

    async def two(alone: bool) -> None:
        await asyncio.gather(plane.predict(served, X, alone=alone), plane.predict(served, X, alone=alone))

    asyncio.run(two(alone=False))
    assert model_calls(plane) == 1  # in company: one shared call
    asyncio.run(two(alone=True))
    assert model_calls(plane) == 3  # each alone: a call each, at once
