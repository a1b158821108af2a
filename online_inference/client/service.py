"""The service as the client calls it: readiness, the model's card, and its rows answered, with
retries of what may pass (connection errors, 502/503/504) and a clear error for what will not
(a 4xx with the server's reason, a TLS failure)."""

from __future__ import annotations

import datetime
import email.utils
import json
import random
import time
from typing import Any

import httpx

from online_inference.card import ModelCard, read_json
from online_inference.client.errors import ClientError
from online_inference.client.report import Progress
from online_inference.client.table import Table, batches
from online_inference.client.tls import Tls, tls_failure

RETRY_STATUSES = {502, 503, 504}
KEY_ENV = "HEART_API_KEY"
REFUSED = {401: f" (give an API key of its group: --api-key or {KEY_ENV})", 403: ""}  # the server's reason says the group
PREDICT, EXPLAIN = "/predict", "/explain"
MAX_BACKOFF_SECONDS = 5.0  # the longest wait asked between two tries, the server's Retry-After included
JITTER = 0.25  # each wait is longer by up to this share, at random: clients shed together do not come back together


class InferenceClient:
    def __init__(self, url: str, retries: int = 5, backoff: float = 0.2, timeout: float = 30.0,
                 api_key: str | None = None, tls: Tls = Tls(), transport: httpx.BaseTransport | None = None):
        """``api_key``: sent as ``Authorization: Bearer`` on every request; ``transport``: httpx's
        (tests)."""
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=url.rstrip("/"), timeout=timeout, headers=headers, verify=tls.verify(),
                                 transport=transport)
        self.retries = retries
        self.backoff = backoff
        # A server that asks for a client certificate may just close a connection without one (TLS 1.3)
        self.hint = " (if the server asks for a client certificate: --cert and --key)" \
            if self.http.base_url.scheme == "https" and tls.cert is None else ""

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Retries connection errors and 502/503/504 with exponential backoff, never sooner than
        the server's ``Retry-After`` asks (a busy service sheds with it: a client that came back
        at once would only add to the load), with jitter; raises on 4xx and on a TLS failure."""
        delay = self.backoff
        for attempt in range(self.retries + 1):
            asked = 0.0
            try:
                response = self.http.request(method, path, **kwargs)
            except httpx.TransportError as error:
                problem = self.transport_problem(method, path, error)
            else:
                if response.status_code not in RETRY_STATUSES:
                    break
                problem, asked = f"HTTP {response.status_code}: {reason(response)}", retry_after(response)
            if attempt == self.retries:
                raise ClientError(f"{method} {path} failed after {self.retries + 1} attempts: {problem}")
            time.sleep(max(delay, asked) * random.uniform(1.0, 1.0 + JITTER))
            delay = min(delay * 2, MAX_BACKOFF_SECONDS)
        if response.status_code >= 400:
            raise ClientError(refusal(method, path, response))
        return response

    def __enter__(self) -> InferenceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()  # its connections too: a server waits for an idle one at its stop

    def transport_problem(self, method: str, path: str, error: httpx.TransportError) -> str:
        """What went wrong, for a later try; a TLS failure raises at once (it would fail again)."""
        problem = f"{type(error).__name__}: {error}"
        if tls_failure(error):
            raise ClientError(f"{method} {path}: TLS: {problem}") from None
        return problem + self.hint

    def wait_ready(self, seconds: float) -> dict[str, Any]:
        """Poll ``/health`` until 200; a failed model ends the wait at once."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                response = self.http.get("/health")
                if response.status_code in REFUSED:
                    raise ClientError(refusal("GET", "/health", response))
                body = response.json()
                if response.status_code == 200:
                    return body  # type: ignore[no-any-return]
                if body.get("status") == "failed":
                    raise ClientError(f"model failed to load: {body.get('reason')}")
                problem = f"status {body.get('status')}"
            except httpx.TransportError as error:
                problem = self.transport_problem("GET", "/health", error)
            except ValueError as error:
                problem = f"{type(error).__name__}: {error}"
            if time.monotonic() >= deadline:
                raise ClientError(f"service not ready after {seconds:g}s ({problem})")
            time.sleep(0.2)

    def card(self) -> ModelCard:
        try:
            return read_json(ModelCard, self.request("GET", "/model").json())  # type: ignore[no-any-return]
        except ValueError as error:
            raise ClientError(f"GET /model: not a model card: {error}") from None

    def predict(self, features: list[str], rows: list[list[float]], endpoint: str = PREDICT) -> list[dict[str, Any]]:
        """The answer rows of ``endpoint`` (``/predict`` or ``/explain``: the same body)."""
        response = self.request("POST", endpoint, json={"features": features, "data": rows})
        return response.json()["predictions"]  # type: ignore[no-any-return]

    def predict_all(self, table: Table, batch_size: int, progress: Progress, endpoint: str = PREDICT) -> list[dict[str, Any]]:
        predictions: list[dict[str, Any]] = []
        for batch in batches(table.rows, batch_size):
            predictions.extend(self.predict(table.features, batch, endpoint))
            progress.advance(len(batch))
        return predictions


def refusal(method: str, path: str, response: httpx.Response) -> str:
    """A 4xx's message: the status, the server's reason and, for a 401, how to give a key."""
    return f"{method} {path}: HTTP {response.status_code}: {reason(response)}{REFUSED.get(response.status_code, '')}"


def retry_after(response: httpx.Response) -> float:
    """The seconds the server's ``Retry-After`` asks to wait (RFC 9110 §10.2.3: a number of seconds
    or an HTTP date), at most :data:`MAX_BACKOFF_SECONDS`; 0 without one (or one unreadable)."""
    value = response.headers.get("retry-after", "").strip()
    if value.isdigit():
        return min(float(value), MAX_BACKOFF_SECONDS)
    try:
        seconds = (email.utils.parsedate_to_datetime(value) - datetime.datetime.now(datetime.timezone.utc)).total_seconds()
    except (TypeError, ValueError):  # no date, or one without a zone (HTTP's are GMT)
        return 0.0
    return min(max(seconds, 0.0), MAX_BACKOFF_SECONDS)


def reason(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500]
    if isinstance(body, dict) and "error" in body:
        problems = body.get("problems") or []
        details = "; ".join(
            f"row {p.get('row')} {p.get('feature') or ''}: {p['reason']}".replace(" None", "") for p in problems[:10]
        )
        more = f" (+{len(problems) - 10} more)" if len(problems) > 10 else ""
        return f"{body['error']}" + (f": {details}{more}" if details else "")
    return json.dumps(body)[:500]
