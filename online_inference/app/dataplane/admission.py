"""What all requests in flight may hold together, and how long one may wait: the service's
defence against a crowd (every other limit is per request).

- **The memory budget.** Each request with a body is charged, when its head arrives and before its
  body is read, what its body will hold (:func:`body_cost`, from its declared length; a chunked
  body as it arrives), and once the body has come, what its values will become (counted at
  vectorised speed, before any parser: :meth:`Ticket.hold_values`; a body of up to
  :data:`COUNTED_FROM_BYTES` is charged at its head for the most values it can hold). The charge
  is held until its answer is written. A request whose charge would take the total past
  ``MEMORY_BUDGET_BYTES`` (less the room kept for the one parse that runs at a time) is refused
  (503 with ``Retry-After``) unread. A request without a body (the probes, metadata, metrics) is
  counted but never refused: it costs only :data:`FIXED_BYTES`, and connections are bounded by
  ``LIMIT_CONCURRENCY``.
- **The queue deadline.** A request that has waited ``MAX_QUEUE_SECONDS`` before its work starts
  (from its first byte, or from its body's last when the upload took longer) is shed (503 with
  ``Retry-After``): answered late, it would only make every request behind it late too. Only work
  is shed (``POST``; :mod:`workqueue`); probes are always answered.

The figures behind :func:`request_cost` are measured (``make memory``:
online_inference/bench/memory.py, recorded in bench/results/memory.json; docs/ARCHITECTURE.md
has the table), and a test holds these constants above the measurement. This module imports no
web framework: the edge charges and refuses, the front sheds, the metrics read the counts, and a
shared model call waits for the requests counted queued (:mod:`batching`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from online_inference.app.settings import Settings
from online_inference.app.errors import Overloaded, PayloadTooLarge

log = logging.getLogger(__name__)

# What any request holds beyond its body: uvicorn's cycle, its task, the scope and the headers.
FIXED_BYTES = 32 * 1024
# The body as read: the parts uvicorn hands over, the whole body they are joined into, and a
# copy a parser may make (measured on bodies padded to MAX_BODY_BYTES: bench/memory.py).
BODY_COPIES = 3
# What a request holds per JSON value from its parse to its answer written: the matrix (float32),
# the model's outputs, and the answer's bytes (with a training-range warning for every value
# that can have one: the longest answer a row can have).
HELD_VALUE_BYTES = 32
# What parsing makes of a value while it runs, at most (the pydantic path's instances form, an
# object per row with its keys, is the costliest; encoding an answer costs less). Parsing and
# encoding run on the event loop, one request at a time, never across an await: the budget keeps
# room for one parse of the largest request, not one per request.
TRANSIENT_VALUE_BYTES = 320
RETRY_AFTER_SECONDS = 1
SHED = "the service is busy: the request waited past MAX_QUEUE_SECONDS for its work to start; retry later"
TICKET = "heart.admission"  # the ASGI scope's extension that carries a request's Ticket (the edge puts it there)
TRIM_AFTER_BYTES = 32 * 1024 * 1024  # a burst that held this much gives its memory back to the system
# A body this small is charged at its head for the most values it can hold: counting them would
# cost more than the bytes it saves (most requests are this small).
COUNTED_FROM_BYTES = 4096


def values_in(body_bytes: int, values_limit: int | None) -> int:
    """The most values a body of ``body_bytes`` can hold: every JSON value takes at least two
    bytes (itself and a separator), a binary tensor's four (FP32); and none may hold more than
    ``values_limit`` (the validation's: larger bodies are refused before any parser reads them;
    None until a model is loaded)."""
    values = body_bytes // 2 + 1
    return values if values_limit is None else min(values, values_limit)


def body_cost(body_bytes: int) -> int:
    """What a request holds while its body arrives and waits: charged when its head arrives."""
    return FIXED_BYTES + BODY_COPIES * body_bytes


def request_cost(body_bytes: int, values_limit: int | None) -> int:
    """The most memory a request with a body of ``body_bytes`` holds while it is served: its body,
    and what its values become (charged once they are counted, when the body has come)."""
    return body_cost(body_bytes) + HELD_VALUE_BYTES * values_in(body_bytes, values_limit)


def parse_reserve(values_limit: int | None) -> int:
    """What the budget keeps for the one parse that may run at a time."""
    return 0 if values_limit is None else TRANSIENT_VALUE_BYTES * values_limit


def largest_body(capacity: int, values_limit: int | None) -> int:
    """The largest body whose request can fit ``capacity`` (:func:`request_cost` grows with it)."""
    low, high = 0, capacity
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if request_cost(middle, values_limit) <= capacity else (low, middle - 1)
    return low


@dataclass
class Counts:
    """What the metrics read: bytes held now, the most held, refusals and sheds by reason, and the
    requests queued (their bodies have come, their work has not started: the loop starts it in a
    turn to come, or the work queue holds it)."""

    held: int = 0
    peak: int = 0
    refused_memory: int = 0
    shed_queue: int = 0
    queued: int = 0


class Ticket:
    """One request's charge, from its head until its answer is written (or its connection lost)."""

    __slots__ = ("admission", "since", "bytes", "body_bytes", "chunked", "complete", "counted", "queued")

    def __init__(self, admission: Admission, arrived: float, charge: int, body_bytes: int, chunked: bool, counted: bool):
        self.admission = admission
        self.since = arrived  # time.monotonic() at its first byte; at its last once its body has come
        self.bytes = charge
        self.body_bytes = body_bytes
        self.chunked = chunked  # its body comes without a declared length: charged as it arrives
        self.complete = False  # its body has all arrived
        self.counted = counted  # what its values become is charged (a small body's: at its head)
        self.queued = False  # its body has come, its work has not started (Counts.queued)

    @property
    def charged_in_full(self) -> bool:
        """Its body has all come and what it holds is all charged: its work needs no more reading."""
        return self.complete and self.counted

    def grow(self, more_body: int) -> None:
        """A chunked body's next ``more_body`` bytes, charged; Overloaded if they do not fit."""
        self.add(BODY_COPIES * more_body)
        self.body_bytes += more_body

    def hold_values(self, values: int) -> None:
        """Its body has come with at most ``values`` JSON values: charge what they become (the
        matrix, the model's outputs, the answer) before its work starts, unless that is charged
        already; Overloaded if it does not fit."""
        if not self.counted:
            self.add(HELD_VALUE_BYTES * min(values, self.admission.values_limit or values))
            self.counted = True

    def add(self, charge: int) -> None:
        if not self.admission.take(charge):
            raise self.admission.overloaded()
        self.bytes += charge

    def release(self) -> None:
        """Give the charge back (once: later calls do nothing); a request still queued never starts."""
        self.leave_queue()
        if self.bytes:
            self.admission.give_back(self.bytes)
            self.bytes = 0

    def body_read(self) -> None:
        """Its body has all arrived: its wait for the work counts from now (not the client's upload),
        and a request with a body is queued until its work starts."""
        self.since, self.complete = time.monotonic(), True
        if self.body_bytes and not self.queued:
            self.queued = True
            self.admission.counts.queued += 1

    def leave_queue(self) -> None:
        """Its work starts (or, released, never will)."""
        if self.queued:
            self.queued = False
            self.admission.counts.queued -= 1


class Admission:
    """The budget and the deadline of one service. Used from the event loop's thread only."""

    def __init__(self, budget_bytes: int, max_queue_seconds: float):
        self.budget = budget_bytes
        self.max_queue_seconds = max_queue_seconds
        self.counts = Counts()
        self.trim = malloc_trim()
        self.since_trim = 0  # bytes charged since memory was last given back
        self.serve(None)

    @classmethod
    def of(cls, settings: Settings) -> Admission:
        return cls(settings.MEMORY_BUDGET_BYTES, settings.MAX_QUEUE_SECONDS)

    def serve(self, values_limit: int | None) -> None:
        """A model is served whose requests need at most ``values_limit`` JSON values (None: none yet)."""
        self.values_limit = values_limit
        self.capacity = self.budget - parse_reserve(values_limit)  # what requests may hold together
        self.largest_body = largest_body(self.capacity, values_limit)
        # What a small body's request costs, by its length: looked up, not worked out, per request.
        self.small_costs = [request_cost(length, values_limit) for length in range(COUNTED_FROM_BYTES + 1)]

    def admit(self, declared: int, chunked: bool, arrived: float) -> Ticket:
        """The ticket of a request whose head declares ``declared`` body bytes (and whether more
        come in chunks); Overloaded if its charge does not fit the budget now, PayloadTooLarge if
        it never would."""
        if not (declared or chunked):
            return self.count(FIXED_BYTES, 0, arrived)
        if declared > self.largest_body:
            raise PayloadTooLarge(f"a body of {declared} bytes may hold {request_cost(declared, self.values_limit)} bytes, "
                                  f"more than MEMORY_BUDGET_BYTES ({self.budget}) leaves for requests ({self.capacity})")
        counted = 0 < declared <= COUNTED_FROM_BYTES
        charge = self.small_costs[declared] if counted else body_cost(declared)
        if not self.take(charge):
            raise self.overloaded()
        return Ticket(self, arrived, charge, declared, chunked, counted)

    def count(self, charge: int, body_bytes: int, arrived: float) -> Ticket:
        """The ticket of a request that is counted but never refused (no body of work: a probe,
        metadata): its ``charge`` taken whatever the budget holds."""
        self.take(charge, always=True)
        return Ticket(self, arrived, charge, body_bytes, False, True)

    def overloaded(self) -> Overloaded:
        self.counts.refused_memory += 1
        return Overloaded("the service is at its memory budget for requests in flight (MEMORY_BUDGET_BYTES); retry later",
                          RETRY_AFTER_SECONDS)

    def take(self, charge: int, always: bool = False) -> bool:
        counts = self.counts
        if not always and counts.held + charge > self.capacity:
            return False
        counts.held += charge
        if counts.held > counts.peak:
            counts.peak = counts.held
        self.since_trim += charge
        return True

    def give_back(self, charge: int) -> None:
        counts = self.counts
        counts.held -= charge
        if counts.held == 0 and self.since_trim >= TRIM_AFTER_BYTES:
            self.since_trim = 0
            self.trim()

    def too_late(self, ticket: Ticket, now: float | None = None) -> bool:
        """Whether a request has waited past the deadline."""
        return (now if now is not None else time.monotonic()) - ticket.since > self.max_queue_seconds

    def shed(self) -> Overloaded:
        """The answer to a request that would wait, or waited, past the deadline (counted)."""
        self.counts.shed_queue += 1
        return Overloaded(SHED, RETRY_AFTER_SECONDS)


def malloc_trim() -> Callable[[], None]:
    """glibc's ``malloc_trim(0)``: the heap's free pages go back to the system once a burst is
    over (without it, a burst's peak stays the process's RSS). A no-op where there is no glibc."""
    try:
        import ctypes

        function = ctypes.CDLL(None).malloc_trim  # the process's own symbols: libc's included
    except (ImportError, OSError, AttributeError):
        return lambda: None

    def trim() -> None:
        started = time.perf_counter()
        function(0)
        log.debug("memory given back after a burst in %.1f ms", 1000 * (time.perf_counter() - started))

    return trim
