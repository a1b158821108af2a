"""Requests that arrive together share one model call.

A call of the model costs about the same for 1 row as for 32 (its fixed cost per call is most of
the work at that size: docs/ARCHITECTURE.md has the figures), so when many clients send small
requests at once, answering each with its own call wastes most of a core. The event loop runs
every request it read in one turn before anything those requests schedule: the first request of a
turn to ask for a prediction schedules the call (``call_soon``), every other request of that turn
joins it, and each gets its own rows of the answer (a call computes contributions when any of its
requests asks: a row's bits are the same either way).

There is no timer. A request alone waits one turn of the loop. A call waits one turn more, once,
when other requests are on their way to it (``more_coming``: the loop has read their bodies and
starts their work in its next turn): they join it. Without that wait, each turn's requests got a
call of their own under load, and a call costs far more in a busy process than in a loop of
calls (its code and data are out of the CPU's caches): docs/ARCHITECTURE.md ("Shared model
calls") has the measurement. Used from the event loop's thread only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

import numpy as np


class Sliceable(Protocol):
    def rows(self, start: int, stop: int) -> Sliceable: ...


R = TypeVar("R", bound=Sliceable)


class Batcher(Generic[R]):
    def __init__(self, run: Callable[[np.ndarray, bool], R], more_coming: Callable[[], bool] = lambda: False):
        self.run = run  # the rows, and whether any of their requests asks for contributions
        self.more_coming = more_coming  # whether requests the loop has read will start their work in its next turn
        self.pending: list[tuple[np.ndarray, asyncio.Future[R]]] = []
        self.explain = False
        self.waited = False  # the pending call has waited its one turn for the requests on their way

    def submit(self, X: np.ndarray, explain: bool = False) -> asyncio.Future[R]:
        """The answer for ``X``'s rows, from the call that this turn's requests share (or its
        error); with contributions if ``explain`` (then the whole call computes them)."""
        loop = asyncio.get_running_loop()
        if not self.pending:
            loop.call_soon(self.flush)
        future: asyncio.Future[R] = loop.create_future()
        self.pending.append((X, future))
        self.explain |= explain
        return future

    def flush(self) -> None:
        if not self.waited and self.more_coming():
            self.waited = True
            asyncio.get_running_loop().call_soon(self.flush)
            return
        self.waited = False
        pending, self.pending = self.pending, []
        explain, self.explain = self.explain, False
        try:
            answer = self.run(pending[0][0] if len(pending) == 1 else np.concatenate([X for X, _ in pending]), explain)
        except Exception as error:  # every request of the call fails with it
            for _, future in pending:
                settle(future, error)
            return
        start = 0
        for X, future in pending:
            settle(future, answer if len(pending) == 1 else answer.rows(start, start + len(X)))
            start += len(X)


def settle(future: asyncio.Future[R], outcome: R | Exception) -> None:
    """Give a future its answer or error, unless it was cancelled meanwhile (it takes nothing)."""
    if future.done():
        return
    if isinstance(outcome, Exception):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
