"""The data plane: the model served (:class:`Served`: published whole, swapped whole), the card's
rules on the rows every protocol decodes (:class:`Rows`), and inference. Its life cycle (the load at
start, the repository API's loads and unloads, the poll) is :mod:`.repository`'s.

Protocols (:mod:`...protocols`) convert their wire formats and call in here; nothing in this module
knows about HTTP beyond raising :mod:`errors` that carry their status.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import numpy as np

from online_inference.app.dataplane.access import Access
from online_inference.app.dataplane.admission import Admission
from online_inference.app.dataplane.batching import Batcher
from online_inference.app.dataplane.repository import Options, Repository, Source
from online_inference.app.dataplane.validation import Validator
from online_inference.app.settings import Settings
from online_inference.app.errors import InvalidInput, ModelNotFound, ModelNotReady, NoContributions, PayloadTooLarge
from online_inference.app.dataplane.rules import CardRules
from online_inference.app.dataplane.metrics import Metrics
from online_inference.app.model.session import ModelSession, Prediction
from online_inference.app.model.storage import fetch_model
from online_inference.card import ModelCard


Loader = Callable[[], ModelSession]
Prepare = Callable[["Served"], object]
State = Literal["loading", "ready", "failed", "unloaded"]
T = TypeVar("T")
SHARED_CALL_ROWS = 64  # requests of up to this many rows share model calls; a larger one gains nothing


def default_loader(settings: Settings) -> Loader:
    """Fetch ``MODEL_URI`` (with retries) and open it, pinned to ``MODEL_SHA256`` if set."""
    policy = Options.of(settings).policy
    return lambda: ModelSession(fetch_model(settings.MODEL_URI, policy), settings.MODEL_SHA256)


def create_plane(settings: Settings, loader: Loader | None = None, prepare: Sequence[Prepare] = ()) -> DataPlane:
    """The data plane of one service: ``loader`` replaces the default ``MODEL_URI`` loader (tests);
    ``prepare``: what the protocols build from each model before it is served."""
    admission = Admission.of(settings)
    access = Access.of(settings.API_KEYS_FILE, settings.SECRETS_RECHECK_SECONDS)
    return DataPlane(loader or default_loader(settings), Metrics(admission.counts), settings.MAX_BATCH_ROWS, admission, prepare, access,
                     Options.of(settings))


@dataclass(frozen=True)
class Rows:
    """What every protocol decodes a request's input into, before any of the card's rules:
    ``[N, features]`` values, as a float array (a tensor's bytes) or as Python rows (JSON)."""

    values: np.ndarray | list[Any]
    numbers_only: bool  # no value can be a boolean (a tensor's bytes; JSON without true or false)


@dataclass(frozen=True, eq=False)  # one per load: compared (and hashed) by identity
class Served:
    """What a ready data plane serves: the session, and the card's rules and their explanations. A
    request holds the one it started with to its end, whatever is served meanwhile; its small
    calls are shared only with other requests of the same Served (``batcher``: a call never mixes
    the rows of two models)."""

    session: ModelSession
    rules: CardRules
    card: ModelCard = field(init=False)  # the session's, read on every request
    validator: Validator = field(init=False)  # pydantic's reading of the card, which explains bad input
    batcher: Batcher[Prediction] = field(init=False)  # this model's shared calls (DataPlane.build)

    def __post_init__(self) -> None:
        object.__setattr__(self, "card", self.session.card)
        object.__setattr__(self, "validator", Validator(self.card))

    def matrix(self, rows: Rows) -> np.ndarray:
        """float32 ``[N, features]`` of rows that hold to the card's rules; PayloadTooLarge or
        InvalidInput (every problem, by row and feature) otherwise. Rows that cannot hold a boolean
        are checked as whole arrays first (:mod:`.rules`); pydantic explains the rest."""
        values = rows.values
        if len(values) > self.rules.max_rows:
            raise PayloadTooLarge(f"at most {self.rules.max_rows} rows per request, got {len(values)}")
        X = self.rules.check(values) if rows.numbers_only else None
        if X is not None:
            return X
        return self.validator.matrix(values.tolist() if isinstance(values, np.ndarray) else values)

    def check_explainable(self) -> None:
        """NoContributions, saying why, unless the model has exact per-feature contributions."""
        contributions = self.card.contributions
        if contributions.output is None:
            raise NoContributions(f"model {self.card.name!r} has no exact per-feature contributions: {contributions.why}")


class DataPlane:
    def __init__(self, loader: Loader, metrics: Metrics, max_rows: int, admission: Admission, prepare: Sequence[Prepare] = (),
                 access: Access | None = None, options: Options | None = None):
        self.access = access or Access(None)  # who may call what (API keys), asked by every protocol before a body is read
        self.prepare = prepare  # run on each model before it is served: ready means every endpoint answers
        self.metrics = metrics
        self.admission = admission  # what requests in flight hold, and how long they may wait
        self.max_rows = max_rows
        self.state: State = "loading"
        self.draining = False  # the server is stopping: still answering, no longer ready
        self.reason: str | None = None
        self.served: Served | None = None
        self.repository = Repository(self, loader, options or Options())  # loads, unloads, the poll

    def load(self) -> None:
        """Load the model once (``MODEL_URI``, or the loader given); record ready or failed (with the
        reason). Never raises."""
        self.repository.load_now(Source(None), "start")

    def start_loading(self) -> threading.Thread:
        """The load at start in a thread of its own (then the poll, if one is set)."""
        thread = threading.Thread(target=self.repository.run, name="model-loader", daemon=True)
        thread.start()
        return thread

    def build(self, session: ModelSession) -> Served:
        """What serving ``session`` takes (its rules, and what the protocols prepare): raises if any of it fails."""
        served = Served(session, CardRules(session.card, self.max_rows))
        batcher = Batcher(lambda X, explain: self.run_model(served, X, explain), self.requests_coming)
        object.__setattr__(served, "batcher", batcher)
        for build in self.prepare:
            build(served)
        return served

    def publish(self, served: Served) -> None:
        """Serve ``served`` from now on: requests that hold the one before finish on it."""
        self.admission.serve(served.rules.values_limit)
        self.metrics.set_model(served.card)
        self.served = served  # after what it needs: whoever sees it sees all of it
        self.state, self.reason = "ready", None

    def withdraw(self, state: State, reason: str) -> None:
        """Serve no model (unloaded, or failed with nothing to serve), saying why."""
        self.state, self.reason = state, reason
        self.served = None  # last: whoever sees no model sees why
        self.metrics.set_model(None)

    def drain(self) -> None:
        self.draining = True

    def health(self) -> dict[str, Any]:
        """``status``: ready (the model is loaded and checked: every endpoint answers), loading,
        failed (with the reason), unloaded (through the repository API), or draining (the server
        is stopping); ``last_load``: how the last load through the repository API (or the poll) ended."""
        if self.draining:
            return {"status": "draining"}
        served = self.served
        if served is not None:
            card = served.card
            body: dict[str, Any] = {"status": "ready", "model": {"name": card.name, "version": card.version, "sha256": card.sha256}}
        else:
            body = {"status": self.state}
            if self.reason:
                body["reason"] = self.reason
        last = self.repository.last_load
        if last is not None:
            body["last_load"] = last.to_dict()
        return body

    def ready(self) -> Served:
        if self.served is None:
            detail = f": {self.reason}" if self.reason else ""
            raise ModelNotReady(f"model {self.state}{detail}")
        return self.served

    def ready_named(self, name: str, version: str | None = None) -> Served:
        """The served model if it has this name (and version, when one is asked for)."""
        served = self.ready()
        card = served.card
        if name != card.name:
            raise ModelNotFound(f"unknown model {name!r}; this server serves {card.name!r}")
        if version is not None and version != card.version:
            raise ModelNotFound(f"model {name!r} has no version {version!r}; this server serves version {card.version!r}")
        return served

    def decode(self, protocol: str, parse: Callable[[], T]) -> T:
        """Run a protocol's decoding of a request (to the card's rules), counting its rejections."""
        try:
            return parse()
        except InvalidInput:
            self.metrics.count_validation_failure(protocol)
            raise

    def predict(self, served: Served, X: np.ndarray, explain: bool = False) -> Awaitable[Prediction]:
        """The model's answer for ``X``, to await (with each row's contributions if ``explain``:
        NoContributions if the model has none); small requests that arrive together share one
        model call (see :mod:`batching`). Not a coroutine: one fewer frame for every request."""
        if explain:
            served.check_explainable()
        if self.may_share(served, X):
            return served.batcher.submit(X, explain)
        answer: asyncio.Future[Prediction] = asyncio.get_running_loop().create_future()
        answer.set_result(self.run_model(served, X, explain))
        return answer

    def requests_coming(self) -> bool:
        """Whether requests the loop has read start their work in a turn to come (their bodies have
        come: the admission's queued count)."""
        return self.admission.counts.queued > 0

    def may_share(self, served: Served, X: np.ndarray) -> bool:
        """Whether ``X`` may join a shared call (of its own model's: ``served.batcher``): small enough to gain."""
        return len(X) <= SHARED_CALL_ROWS

    def run_model(self, served: Served, X: np.ndarray, explain: bool = False) -> Prediction:
        """One call of the model, timed and counted."""
        started = time.perf_counter()
        prediction = served.session.run(X, explain)
        self.metrics.observe_inference(prediction.labels, time.perf_counter() - started)
        return prediction
