"""The model's life cycle, and the one-model repository that Triton's model repository extension
sees: the load at start, the API's loads and unloads, and the poll of ``MODEL_URI``.

Every load goes the same way, in a thread (never on the event loop), one at a time: fetch the
artifact (``MODEL_URI``, pinned to ``MODEL_SHA256``; or the ``uri`` and ``sha256`` a load names,
where ``MODEL_LOAD_FROM_REQUEST`` allows it), open it (the sha256 pin, the ONNX signature against
the card), build everything the protocols serve from it (:meth:`DataPlane.build`), and only then
swap it in (:meth:`DataPlane.publish`). A load that fails anywhere leaves the model served as it
was; it answers why (:class:`LoadFailed`), ``/health``'s ``last_load`` says so, and
``model_loads_total`` counts it. An unload serves nothing until a load. The model keeps its name:
a load must bring a model of the name the path gives, the name served so far.

The poll (``MODEL_POLL_SECONDS``) asks the store for ``MODEL_URI``'s ETag (one HEAD) and
downloads only when it changed (or when the store gives none, or for a file): a load follows
when the bytes' sha256 is not that of the artifact last fetched from ``MODEL_URI``, loaded or
refused (a refused artifact is not tried again until it changes). It loads nothing while the
model is unloaded: an unload is an operator's, and a load undoes it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from online_inference.app.errors import InvalidInput, ModelNotFound
from online_inference.app.model.session import ModelSession
from online_inference.app.model.storage import FetchPolicy, current_etag, fetch_artifact, fetch_model, redact
from online_inference.app.settings import Settings

if TYPE_CHECKING:
    from online_inference.app.dataplane.plane import DataPlane

log = logging.getLogger(__name__)

Trigger = Literal["start", "api", "poll"]
T = TypeVar("T")
UNLOADED = "by a request to the repository API; a load brings it back"
INDEX_STATES = {"ready": "READY", "loading": "LOADING", "failed": "UNAVAILABLE", "unloaded": "UNAVAILABLE"}  # Triton's


class LoadFailed(InvalidInput):
    """A load that did not serve its artifact (fetch, checks or what is built from it): the model
    served before still serves. Triton answers a failed load 400 (INVALID_ARGUMENT), and so does this."""


@dataclass(frozen=True)
class Options:
    """What the life cycle takes from the settings."""

    policy: FetchPolicy = FetchPolicy()
    model_uri: str | None = None  # what the poll watches
    model_sha256: str | None = None
    uris_from_requests: bool = False  # MODEL_LOAD_FROM_REQUEST
    poll_seconds: float | None = None

    @classmethod
    def of(cls, settings: Settings) -> Options:
        policy = FetchPolicy(attempts=settings.MODEL_LOAD_ATTEMPTS, backoff_seconds=settings.MODEL_LOAD_BACKOFF_SECONDS,
                             timeout_seconds=settings.MODEL_LOAD_TIMEOUT_SECONDS, cache_dir=settings.MODEL_CACHE_DIR)
        return cls(policy, settings.MODEL_URI, settings.MODEL_SHA256, settings.MODEL_LOAD_FROM_REQUEST, settings.MODEL_POLL_SECONDS)


@dataclass(frozen=True)
class Source:
    """Where a load takes its artifact: ``uri`` None is the default loader's (``MODEL_URI``)."""

    uri: str | None
    sha256: str | None = None

    def shown(self) -> str:
        return "MODEL_URI" if self.uri is None else redact(self.uri)


@dataclass(frozen=True)
class LoadRecord:
    """How one load ended, as ``/health``'s ``last_load`` shows it."""

    trigger: str  # api or poll
    result: str  # ok or failed
    source: str
    at: str  # when it ended (UTC, ISO 8601)
    seconds: float
    model: dict[str, str] | None = None  # the model it served
    reason: str | None = None  # why it failed

    def to_dict(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value is not None}


class Repository:
    def __init__(self, plane: DataPlane, loader: Callable[[], ModelSession], options: Options):
        self.plane = plane
        self.loader = loader  # the default source's: MODEL_URI (or a test's model)
        self.options = options
        self.lock = threading.Lock()  # one load or unload at a time
        self.model: tuple[str, str] | None = None  # (name, version) of the model served last: what the API answers for
        self.last_load: LoadRecord | None = None  # of the API's and the poll's loads (not the start's)
        self.seen_sha256: str | None = None  # MODEL_URI's artifact as last fetched, loaded or refused
        self.seen_etag: str | None = None

    def run(self) -> None:
        """The model-loader thread: the load at start, then the poll (if set) until the drain."""
        self.load_now(Source(None), "start")
        seconds = self.options.poll_seconds
        while seconds is not None and not self.plane.draining:
            time.sleep(seconds)  # the poll's period (a daemon thread: the exit ends it)
            try:
                self.poll_once()
            except Exception as error:  # a store that cannot say: the model served stays, the next poll asks again
                log.warning("could not poll %s: %s", redact(self.options.model_uri or ""), error)

    def load_now(self, source: Source, trigger: Trigger, payload: bytes | None = None, name: str | None = None) -> LoadRecord:
        """Fetch, check and build ``source``'s model and swap it in (``payload``: its bytes,
        fetched already); or say why not, the model served unchanged. Never raises. ``name``: the
        model the load is for (its artifact must be that model)."""
        with self.lock:
            started = time.perf_counter()
            if self.plane.served is None:
                self.plane.state, self.plane.reason = "loading", None
            try:
                session = self.open(source, payload)
                card = session.card
                if name is not None and card.name != name:
                    raise LoadFailed(f"the artifact is model {card.name!r}, not {name!r}")
                if self.model is not None and card.name != self.model[0]:
                    raise LoadFailed(f"the artifact is model {card.name!r}; this server serves {self.model[0]!r}")
                served = self.plane.build(session)
            except Exception as error:  # any failure of the artifact is reported, not raised
                return self.failed(source, trigger, str(error) or type(error).__name__, started)
            self.plane.publish(served)
            self.model = (card.name, card.version)
            seconds = time.perf_counter() - started
            log.info("model %s %s ready (sha256 %s, from %s) in %.3fs", card.name, card.version, card.sha256, source.shown(), seconds)
            return self.record(trigger, "ok", source, seconds, {"name": card.name, "version": card.version, "sha256": session.sha256})

    def open(self, source: Source, payload: bytes | None) -> ModelSession:
        if payload is not None:
            session = ModelSession(payload, source.sha256)
        elif source.uri is None:
            session = self.loader()
        else:
            session = ModelSession(fetch_model(source.uri, self.options.policy), source.sha256)
        if source.uri is None:
            self.seen_sha256 = session.sha256
        return session

    def failed(self, source: Source, trigger: Trigger, reason: str, started: float) -> LoadRecord:
        if self.plane.served is None:
            self.plane.withdraw("failed", reason)
        kept = f"; still serving {self.model[0]} {self.model[1]}" if self.plane.served is not None and self.model else ""
        log.error("model failed to load from %s: %s%s", source.shown(), reason, kept)
        return self.record(trigger, "failed", source, time.perf_counter() - started, reason=reason)

    def record(self, trigger: Trigger, result: str, source: Source, seconds: float, model: dict[str, str] | None = None,
               reason: str | None = None) -> LoadRecord:
        self.plane.metrics.count_load(trigger, result)
        at = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        record = LoadRecord(trigger, result, source.shown(), at, round(seconds, 3), model, reason)
        if trigger != "start":
            self.last_load = record
        return record

    def unload_now(self) -> None:
        with self.lock:
            self.plane.withdraw("unloaded", UNLOADED)
            log.info("model unloaded %s", UNLOADED)

    def poll_once(self) -> None:
        """One look at ``MODEL_URI``: a load if its artifact changed (and the model is not unloaded)."""
        uri = self.options.model_uri
        if uri is None or self.plane.state == "unloaded":
            return
        etag = current_etag(uri, self.options.policy)
        if etag is not None and etag == self.seen_etag:
            return
        fetched = fetch_artifact(uri, self.options.policy)
        sha256 = hashlib.sha256(fetched.payload).hexdigest()
        self.seen_etag = fetched.etag
        if sha256 == self.seen_sha256 or self.plane.state == "unloaded":
            return
        log.info("%s changed (sha256 %s): loading it", redact(uri), sha256)
        self.seen_sha256 = sha256  # tried once, whatever comes of it: a refused artifact waits for the next change
        self.load_now(Source(uri, self.options.model_sha256), "poll", payload=fetched.payload)

    # -- the repository API (the protocols call these on the event loop) --

    def index(self, ready_only: bool = False) -> list[dict[str, str]]:
        """Triton's index: the model (once one was served) with its version, state and the reason."""
        plane, model = self.plane, self.model
        if model is None or (ready_only and plane.served is None):
            return []
        version = plane.served.card.version if plane.served is not None else model[1]
        entry = {"name": model[0], "version": version, "state": INDEX_STATES[plane.state]}
        if plane.served is None and plane.reason:
            entry["reason"] = plane.reason
        return [entry]

    async def load(self, name: str, parameters: Mapping[str, Any]) -> LoadRecord:
        """Load ``name`` again (``MODEL_URI``, or the ``uri`` and ``sha256`` of ``parameters`` if
        allowed) and serve it; LoadFailed if it cannot be, the model served unchanged."""
        self.check_name(name)
        source = self.source_of(parameters)
        record = await in_thread(self.load_now, source, "api", None, name)
        if record.result != "ok":
            raise LoadFailed(f"failed to load {name!r}: {record.reason}")
        return record

    async def unload(self, name: str, parameters: Mapping[str, Any]) -> None:
        self.check_name(name)
        unknown = sorted(set(parameters) - {"unload_dependents"})  # a model has no dependents here: nothing to unload with it
        if unknown:
            raise InvalidInput(f"unload takes no parameters {unknown}")
        await in_thread(self.unload_now)

    def check_name(self, name: str) -> None:
        if self.model is not None and name != self.model[0]:
            raise ModelNotFound(f"unknown model {name!r}; this server serves {self.model[0]!r}")

    def source_of(self, parameters: Mapping[str, Any]) -> Source:
        """The artifact a load names: MODEL_URI by default; ``uri`` and ``sha256`` where allowed."""
        unknown = sorted(set(parameters) - {"uri", "sha256"})
        if unknown:
            raise InvalidInput(f"load takes the parameters uri and sha256 only, not {unknown} (a model's "
                               "config and files are its ONNX artifact's)")
        if not parameters:
            return Source(None)
        if not self.options.uris_from_requests:
            raise InvalidInput("a load may not name its artifact here (MODEL_LOAD_FROM_REQUEST is off): it loads MODEL_URI")
        uri, sha256 = parameters.get("uri"), parameters.get("sha256")
        if not (isinstance(uri, str) and uri and isinstance(sha256, str) and len(sha256) == 64):
            raise InvalidInput("a load that names its artifact gives both: uri, and the sha256 it must have (64 hex digits)")
        return Source(uri, sha256)


async def in_thread(func: Callable[..., T], *args: Any) -> T:
    """``func(*args)`` in a daemon thread of its own, awaited: a load never runs on the loop, and a
    download that runs at the exit keeps no thread pool from closing (asyncio's would wait for it)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(outcome: Any, failed: bool) -> None:
        if future.done():  # the awaiting request was cancelled (its client went away): the load ran all the same
            return
        if failed:
            future.set_exception(outcome)
        else:
            future.set_result(outcome)

    def run() -> None:
        try:
            outcome, failed = func(*args), False
        except BaseException as error:  # handed to the awaiting coroutine
            outcome, failed = error, True
        try:
            loop.call_soon_threadsafe(settle, outcome, failed)
        except RuntimeError:  # the loop closed meanwhile (the exit): no one awaits it
            log.debug("the loop closed before %s ended", getattr(func, "__name__", func))

    threading.Thread(target=run, name="model-repository", daemon=True).start()
    return await future
