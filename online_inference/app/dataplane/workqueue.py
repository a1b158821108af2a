"""Where requests wait for their work to start, in order, so that the wait can be seen and bounded.

The work (parsing, the model, the answer) runs on the event loop, one turn after another; in each
turn the loop first runs what is ready, then reads every socket that has data, and accepts one
new connection (libuv accepts one a turn: libuv#3696). If every request that arrived did its work
in the turn after it was read, a burst would make that turn as long as all their work together,
and the requests behind it would wait in the kernel's buffers and its accept queue, where no
clock of the service sees them. So the work is let in a little at a time: at most
:data:`WORK_BYTES` of bodies start their work in one turn (one request always may), the others
wait here, in order, for the next turns. A turn stays short (a few milliseconds of work), the
loop keeps reading and accepting, and a request's wait is counted from the moment it was read.

A request that would wait past ``MAX_QUEUE_SECONDS`` is shed (Overloaded: 503 with
``Retry-After``): at once when the work ahead of it, at the rate the work has been starting,
would take longer than that (Little's law: an HTTP/1.1 client's connection is free again at
once, not after the deadline); and when its turn comes, if it waited past it all the same. A
cheap answer, so that under any load the service spends its time on requests it can still answer
in time. Nothing here knows HTTP: the front puts the requests in.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

from online_inference.app.dataplane.admission import Admission, Ticket

# The bodies whose work starts in one turn of the loop (a request's weight: its body's bytes,
# and a share for what every request costs whatever its size): tens of single rows (one shared
# model call), a few 1,000-row batches, one 10,000-row one. docs/ARCHITECTURE.md ("Under
# overload") has the measurement.
WORK_BYTES = 256 * 1024
REQUEST_WEIGHT = 4 * 1024


def weight(ticket: Ticket) -> int:
    return REQUEST_WEIGHT + ticket.body_bytes


class WorkQueue:
    """FIFO admission to the work, a turn of the loop at a time. Used from the loop's thread only."""

    def __init__(self, admission: Admission):
        self.admission = admission
        self.started = 0  # the weight of the requests whose work started in this turn
        self.next_turn: asyncio.Handle | None = None
        self.waiting: deque[tuple[Ticket, asyncio.Future[None]]] = deque()
        self.waiting_weight = 0
        self.rate = Rate()  # the weight whose work starts a second, while requests wait

    async def enter(self, ticket: Ticket) -> None:
        """Return when ``ticket``'s work may start; Overloaded if it would wait, or waited, too long."""
        if self.starts_now(ticket):
            return
        if self.admission.too_late(ticket):
            raise self.admission.shed()
        if self.rate.seconds_for(self.waiting_weight) > self.admission.max_queue_seconds:
            raise self.admission.shed()
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting.append((ticket, turn))
        self.waiting_weight += weight(ticket)
        self.schedule_next_turn()
        await turn  # cancelled (the client went away): let_in() passes it by

    def starts_now(self, ticket: Ticket) -> bool:
        """Start ``ticket``'s work now if nothing waits, it fits this turn and it is in time (most
        requests); else it must :meth:`enter`."""
        load = weight(ticket)
        if self.waiting or not self.fits(load) or self.admission.too_late(ticket):
            return False
        self.start(ticket, load)
        return True

    def fits(self, load: int) -> bool:
        """Whether work of this weight may start in this turn."""
        return self.started == 0 or self.started + load <= WORK_BYTES

    def start(self, ticket: Ticket, load: int) -> None:
        ticket.leave_queue()
        self.started += load
        if self.next_turn is None:
            self.schedule_next_turn()

    def schedule_next_turn(self) -> None:
        if self.next_turn is None:
            self.next_turn = asyncio.get_running_loop().call_soon(self.new_turn)

    def new_turn(self) -> None:
        """The loop's next turn (after it has read its sockets): let the next ones in."""
        if self.waiting:
            self.rate.add(self.started)
        self.next_turn, self.started = None, 0
        self.let_in()

    def let_in(self) -> None:
        """Start the waiting requests that fit this turn, in order; shed those that waited too long."""
        now = time.monotonic()
        while self.waiting:
            ticket, turn = self.waiting[0]
            load = weight(ticket)
            if turn.done():  # cancelled: the client went away
                self.pop_waiting()
            elif self.admission.too_late(ticket, now):
                self.pop_waiting()
                turn.set_exception(self.admission.shed())
            elif self.fits(load):
                self.pop_waiting()
                self.start(ticket, load)
                turn.set_result(None)
            else:
                return self.schedule_next_turn()

    def pop_waiting(self) -> None:
        ticket, _ = self.waiting.popleft()
        self.waiting_weight -= weight(ticket)


class Rate:
    """Weight a second, over the last second of turns in which requests waited."""

    def __init__(self) -> None:
        self.turns: deque[tuple[float, int]] = deque()
        self.total = 0

    def add(self, started: int) -> None:
        now = time.monotonic()
        self.turns.append((now, started))
        self.total += started
        while self.turns and self.turns[0][0] < now - 1.0:
            self.total -= self.turns.popleft()[1]

    def seconds_for(self, weight: int) -> float:
        """How long work of ``weight`` takes to start at this rate (0 until it is known)."""
        if len(self.turns) < 2 or self.total <= 0:
            return 0.0
        span = max(self.turns[-1][0] - self.turns[0][0], 1e-3)
        return weight * span / self.total
