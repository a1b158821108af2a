"""``python -m online_inference.bench.openloop``: an open-loop HTTP/1.1 load generator.

Arrivals come on a clock (``rate_per_s`` for ``duration_s``: arrival ``i`` is due at
``i / rate_per_s``), not from a fixed number of busy connections: a closed loop (wrk) sends the next
request only when an answer came, so a server that slows down is offered less, and the queue that
would build in front of it never shows. Here it shows: each arrival, at its scheduled time, takes
an idle keep-alive connection or opens a new one (up to ``max_connections``). When none is free
the arrival is counted in ``generator_overflow`` and waits, in order, for the next connection that
frees up; it is never dropped. Latency and the timeout are measured from the *scheduled* time, not
from the send, so time spent waiting for a connection (or on a generator that fell behind) counts.

Every outcome a client can see is classified, one per arrival (:data:`wire.OUTCOMES`): the status
(``200``, ``503_retry_after``, ``503_no_retry_after``, any other code by its number), ``reset``
(ECONNRESET, EPIPE, or the connection closed before a whole answer), ``timeout`` (no whole answer
within ``timeout_s`` of the scheduled time, waiting for a connection included: those are also
counted in ``unsent``), ``refused`` (ECONNREFUSED) and ``other`` (any other error). An answer is
read properly: status line, headers, a ``Content-Length`` or chunked body, or a body to the close;
``connection: close`` (or HTTP/1.0 without keep-alive) closes the connection after its answer.

``run`` returns a :class:`Result`: offered and served rates, the shed fraction, every failure by
kind, latency percentiles of the 200s and of the 503s, the server's peak RSS (VmRSS of ``rss_pid``
and its children, sampled every 100 ms) and a time series of 100 ms buckets by completion time
(:meth:`Result.to_dict`, JSON-serialisable; ``online_inference.devtools.charts.draw_timeline`` draws it).
``capacity`` measures the closed-loop capacity (wrk, N connections) so that a caller can offer a
multiple of it.

Speed: requests are pre-encoded bytes written by raw asyncio Protocols on uvloop; an arrival
costs the generator about 30 µs of CPU (34 µs measured at 10,000/s). Measured on this repository's
2-core machine, shared with other jobs (generator on core 1 with ``taskset``, the server on core
0): against a constant-answer asyncio server it held 16,000 arrivals/s (every one answered, p99
dispatch lag 0.2 ms) and fell behind at 20,000-25,000/s; against the service it held 11,000/s of
one-row bodies (p99 dispatch lag 0.02 ms) and 13,000/s of ten-row bodies with 1,000 connections
open (p99 lag 25 ms). Say a sustained 10,000-15,000 requests/s on one core; ``dispatch_lag_ms`` in
the result (send time minus scheduled time of the arrivals that found a connection) says when a
run was beyond it.

Where the queue is: at most ``max_connections`` requests are in the server at once, and the rest
wait in the generator (``generator_overflow``), as clients waiting to connect. A server that sheds
by the time a request waited inside it sees only its own part of the queue; to load it past its
limit give ``max_connections`` above the rate times that limit (a run that opens thousands of
connections at once costs the generator: at 8,000 connections and 29,000 arrivals/s against the
service its dispatch lag reached seconds, while at 1,000 it stayed under 1 ms).

An arrival unfinished 2 s after its timeout would be a bug here: the run then ends anyway, counts
it as ``lost`` and says where it was (``lost_where``), rather than hang.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path

import uvloop

from online_inference.bench.loadresult import BUCKET_S, Records, Result
from online_inference.bench.wire import (MAX_HEAD_BYTES, Head, chunked_end, failure_of, host_port, http_request, outcome_of,
                                         parse_head)
from online_inference.devtools.procfs import children, status_kb

# What a server under this generator needs: its pool, like a balancer's, must not keep a
# connection idle for longer than the server does, and it has no idle timeout of its own; a
# connection it left idle for the server's TIMEOUT_KEEP_ALIVE (5 s) while the others served would
# race the server's close of it (the keep-alive race every HTTP client meets, which a balancer
# retries: haproxy.cfg's retry-on conn-failure), seen as a few resets in one run of several.
SERVER_KEEP_ALIVE = {"TIMEOUT_KEEP_ALIVE": "60"}
SPIN_S = 0.002  # the generator yields to its loop, rather than sleep, this close to the next arrival


class Connection(asyncio.Protocol):
    """One keep-alive connection with at most one request in flight (no pipelining)."""

    def __init__(self, generator: Generator):
        self.generator = generator
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.current = -1  # the arrival in flight, or -1
        self.head: Head | None = None
        self.body_start = 0
        self.closed = False
        self.warming: asyncio.Future[None] | None = None  # a warm-up request's answer, not recorded

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def start(self, arrival: int, request: bytes) -> None:
        self.current, self.head = arrival, None
        self.buffer.clear()
        assert self.transport is not None
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        if self.current < 0 and self.warming is None:
            return  # bytes no request asked for (after a timeout, or a server's stray bytes): ignored
        self.buffer += data
        if self.head is None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HEAD_BYTES:
                    self.generator.lost(self, ValueError("answer head too large"))
                return
            try:
                self.head = parse_head(bytes(self.buffer[:end]))
            except (ValueError, IndexError):
                self.generator.lost(self, ValueError("malformed answer"))
                return
            self.body_start = end + 4
        head = self.head
        if head.length is not None:
            complete = len(self.buffer) - self.body_start >= head.length
        else:
            complete = head.chunked and chunked_end(self.buffer, self.body_start) >= 0
        if complete and self.warming is not None:
            self.current, self.warming = -1, self.warming.set_result(None)
        elif complete:
            self.generator.answered(self, head)

    def connection_lost(self, exc: Exception | None) -> None:
        head = self.head
        if self.current >= 0 and head is not None and head.length is None and not head.chunked and exc is None:
            self.generator.answered(self, head)  # a body to the close: complete now
        self.generator.lost(self, exc)


# --- the generator ----------------------------------------------------------------------------


class Generator:
    """The connection pool, the backlog of arrivals waiting for a connection, and the records."""

    def __init__(self, host: str, port: int, requests: Sequence[bytes], timeout_s: float, max_connections: int,
                 seed: int | None):
        self.loop = asyncio.get_running_loop()
        self.host, self.port, self.requests = host, port, list(requests)
        self.timeout_s, self.max_connections = timeout_s, max_connections
        self.pick = random.Random(seed) if seed is not None else None
        self.records = Records()
        self.idle: dict[Connection, None] = {}  # an ordered set: the last released is reused first
        self.busy: set[Connection] = set()
        self.connecting: dict[int, asyncio.Task[None]] = {}
        self.backlog: deque[int] = deque()
        self.open_count = 0  # connected or connecting
        self.peak_connections = 0
        self.pending = 0
        self.drained = self.loop.create_future()
        self.arrivals_over = False
        self.start = time.perf_counter()  # not the loop's clock: uvloop's counts whole milliseconds
        self.closed_loop_until = -math.inf  # set by the closed loop: an answer sends the next request
        self.lost_where: dict[str, int] = {}  # see give_up

    def now(self) -> float:
        return time.perf_counter() - self.start

    # arrivals

    def arrive(self, scheduled: float) -> None:
        r = self.records
        index = len(r.scheduled)
        r.scheduled.append(scheduled)
        r.sent.append(math.nan)
        r.done.append(math.nan)
        r.outcome.append("")
        r.overflow.append(0)
        r.request.append(self.pick.randrange(len(self.requests)) if self.pick else index % len(self.requests))
        self.pending += 1
        if self.idle:
            connection, _ = self.idle.popitem()
            self.send(connection, index)
        elif self.open_count < self.max_connections:
            self.open(index)
        else:
            r.overflow[index] = 1
            self.backlog.append(index)

    def send(self, connection: Connection, index: int) -> None:
        self.records.sent[index] = self.now()
        self.busy.add(connection)
        connection.start(index, self.requests[self.records.request[index]])

    def open(self, index: int) -> None:
        self.open_count += 1
        self.peak_connections = max(self.peak_connections, self.open_count)
        self.connecting[index] = self.loop.create_task(self.connect(index))

    async def warm(self, count: int) -> None:
        """Open ``count`` connections into the idle pool before any arrival, each answered once
        (unrecorded) so that the server has accepted it."""
        for _ in range(count):
            _, connection = await self.loop.create_connection(lambda: Connection(self), self.host, self.port)
            connection.warming = self.loop.create_future()
            connection.start(-2, self.requests[0])
            await asyncio.wait_for(connection.warming, self.timeout_s)
            self.open_count += 1
            self.idle[connection] = None
        self.peak_connections = max(self.peak_connections, self.open_count)

    async def connect(self, index: int) -> None:
        """Opens a connection for arrival ``index`` (:meth:`expire` cancels it at the arrival's
        timeout: no timer of its own, which would cost a task per connection)."""
        try:
            _, connection = await self.loop.create_connection(lambda: Connection(self), self.host, self.port)
        except (OSError, asyncio.CancelledError) as error:
            del self.connecting[index]
            self.open_count -= 1
            self.finish(index, "timeout" if isinstance(error, asyncio.CancelledError) else failure_of(error))
            self.slot_freed()
            return
        del self.connecting[index]
        if self.records.outcome[index]:
            self.release(connection)  # the arrival timed out meanwhile: the connection serves the next
        else:
            self.send(connection, index)

    # answers and losses

    def finish(self, index: int, outcome: str) -> None:
        r = self.records
        if r.outcome[index]:
            return
        r.outcome[index] = outcome
        r.done[index] = self.now()
        self.pending -= 1
        if self.pending == 0 and self.arrivals_over and not self.drained.done():
            self.drained.set_result(None)

    def answered(self, connection: Connection, head: Head) -> None:
        index, connection.current = connection.current, -1
        self.busy.discard(connection)
        self.finish(index, outcome_of(head))
        if head.close:
            self.close(connection)
        else:
            self.release(connection)

    def lost(self, connection: Connection, error: BaseException | None) -> None:
        if connection.current >= 0:
            index, connection.current = connection.current, -1
            self.finish(index, failure_of(error))
        self.close(connection, abort=error is not None)

    def close(self, connection: Connection, abort: bool = False) -> None:
        """Closes ``connection`` (``abort``: at once, dropping what it has not sent or read)."""
        self.busy.discard(connection)
        self.idle.pop(connection, None)
        if connection.closed:
            return
        connection.closed = True
        self.open_count -= 1
        if connection.transport is not None:
            if abort:
                connection.transport.abort()
            else:
                connection.transport.close()
        self.slot_freed()

    def release(self, connection: Connection) -> None:
        """A connection free for the next request: the oldest waiting arrival, or the pool."""
        while self.backlog:
            index = self.backlog.popleft()
            if not self.records.outcome[index]:
                self.send(connection, index)
                return
        self.idle[connection] = None
        if self.now() < self.closed_loop_until:
            self.arrive(self.now())  # the closed loop: the next request, on this connection (the last released)

    def slot_freed(self) -> None:
        """A connection closed: the oldest waiting arrival may open one."""
        while self.backlog and self.open_count < self.max_connections:
            index = self.backlog.popleft()
            if not self.records.outcome[index]:
                self.open(index)
                return

    # timeouts

    def expire(self) -> None:
        """Arrivals with no whole answer ``timeout_s`` after their scheduled time."""
        r, limit = self.records, self.now() - self.timeout_s
        while self.backlog and r.scheduled[self.backlog[0]] <= limit:
            self.finish(self.backlog.popleft(), "timeout")
        for index in [i for i in self.connecting if r.scheduled[i] <= limit]:
            self.connecting[index].cancel()
        for connection in [c for c in self.busy if r.scheduled[c.current] <= limit]:
            index, connection.current = connection.current, -1
            self.finish(index, "timeout")
            self.close(connection, abort=True)  # a late answer must not be read as the next one's

    async def expiring(self) -> None:
        interval = min(0.02, self.timeout_s / 10)
        while True:
            await asyncio.sleep(interval)  # the timeout's resolution
            self.expire()

    def give_up(self) -> None:
        """Arrivals still unfinished well after their timeout (a bug): counted ``lost``, with where they were."""
        where = {i: "connection" for i in (c.current for c in self.busy)} | {i: "connecting" for i in self.connecting}
        where |= {i: "backlog" for i in self.backlog}
        for index, outcome in enumerate(self.records.outcome):
            if not outcome:
                self.finish(index, "lost")
                self.lost_where[where.get(index, "nowhere")] = self.lost_where.get(where.get(index, "nowhere"), 0) + 1

    def shut(self) -> None:
        for connection in [*self.idle, *self.busy]:
            self.close(connection)
        for task in list(self.connecting.values()):
            task.cancel()


async def schedule(generator: Generator, rate_per_s: float, count: int) -> None:
    """Arrival ``i`` at ``i / rate_per_s``: every arrival due is dispatched, then a wait for the next.
    A wait shorter than :data:`SPIN_S` is spent yielding to the loop (which reads answers
    meanwhile) rather than on a timer: uvloop's timers count whole milliseconds, and a core that
    halts while it waits adds its wake-up to every latency."""
    index = 0
    while index < count:
        due = min(count, math.floor(generator.now() * rate_per_s) + 1)
        while index < due:
            generator.arrive(index / rate_per_s)
            index += 1
        wait = index / rate_per_s - generator.now()
        await asyncio.sleep(wait - SPIN_S if wait > SPIN_S else 0)  # until the next arrival's time


def process_rss_kb(pid: int) -> int:
    return sum(status_kb(p, "VmRSS") for p in (pid, *children(pid)))


async def sample_rss(generator: Generator, pid: int, samples: list[tuple[float, float]]) -> None:
    """VmRSS of ``pid`` and its children every :data:`BUCKET_S`, as (seconds, MB)."""
    tick = 0
    while True:
        try:
            samples.append((generator.now(), process_rss_kb(pid) / 1024))
        except OSError:
            return  # the process is gone
        tick += 1
        await asyncio.sleep(max(0.0, tick * BUCKET_S - generator.now()))  # the next sample's time


# --- running ----------------------------------------------------------------------------------


async def run_async(url: str, requests: Sequence[bytes], rate_per_s: float, duration_s: float, timeout_s: float = 5.0,
                    max_connections: int = 256, rss_pid: int | None = None, seed: int | None = None,
                    warm_connections: int = 0) -> Result:
    """:func:`run` in a running event loop."""
    if not requests or rate_per_s <= 0 or duration_s <= 0 or timeout_s <= 0 or max_connections < 1:
        raise ValueError("requests, and a positive rate, duration, timeout and max_connections, are needed")
    host, port = host_port(url)
    generator = Generator(host, port, requests, timeout_s, max_connections, seed)
    samples: list[tuple[float, float]] = []
    helpers = [asyncio.create_task(generator.expiring())]
    if rss_pid is not None:
        helpers.append(asyncio.create_task(sample_rss(generator, rss_pid, samples)))
    try:
        await generator.warm(min(warm_connections, max_connections))
        generator.start = time.perf_counter()  # the clock starts with the first arrival
        await schedule(generator, rate_per_s, round(rate_per_s * duration_s))
        generator.arrivals_over = True
        if generator.pending:
            try:  # every arrival ends within timeout_s of its time: this bound is only a safety net
                await asyncio.wait_for(asyncio.shield(generator.drained), timeout_s + 2.0)
            except TimeoutError:
                generator.give_up()
    finally:
        generator.shut()
        for task in helpers:
            task.cancel()
        await asyncio.gather(*helpers, return_exceptions=True)
        await asyncio.sleep(0)  # the transports' connection_lost callbacks run
    return Result(url, rate_per_s, duration_s, timeout_s, max_connections, generator.records, samples,
                  generator.peak_connections, generator.now(), generator.lost_where)


@contextlib.contextmanager
def on_core(core: int | None) -> Iterator[None]:
    """The calling thread runs on ``core`` while this lasts (None: wherever it ran)."""
    if core is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {core})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def run(url: str, requests: Sequence[bytes], rate_per_s: float, duration_s: float, timeout_s: float = 5.0,
        max_connections: int = 256, rss_pid: int | None = None, seed: int | None = None, warm_connections: int = 0,
        core: int | None = None) -> Result:
    """Offer ``rate_per_s`` arrivals a second for ``duration_s`` to ``url`` (its host and port; the
    path is in each request's bytes), on uvloop in its own event loop. ``requests`` is the mix:
    arrival ``i`` sends ``requests[i % len(requests)]``, or a choice of ``random.Random(seed)``
    when a seed is given. Takes ``duration_s`` plus at most ``timeout_s`` (the last answers).
    ``warm_connections`` are opened before the clock starts, as a pool of long-lived clients (or a
    balancer's connections) would be: a server that is busy accepts new connections slowly (one a
    turn of its loop, libuv's way), and a run that opens them as it goes measures that too.
    ``core``: the generator's (the server's is another: sharing one, each would slow the other)."""
    with on_core(core), asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(run_async(url, requests, rate_per_s, duration_s, timeout_s, max_connections, rss_pid, seed,
                                    warm_connections))


async def closed_loop_async(url: str, request: bytes, connections: int, seconds: float, timeout_s: float) -> float:
    host, port = host_port(url)
    generator = Generator(host, port, [request], timeout_s, connections, None)
    helper = asyncio.create_task(generator.expiring())
    generator.closed_loop_until = seconds
    try:
        for _ in range(connections):
            generator.arrive(0.0)
        await asyncio.sleep(seconds)  # the measurement
        generator.closed_loop_until = -math.inf
    finally:
        generator.shut()
        helper.cancel()
        await asyncio.gather(helper, return_exceptions=True)
    ok = sum(1 for d, o in zip(generator.records.done, generator.records.outcome) if o == "200" and d <= seconds)
    return ok / seconds


WRK_SCRIPT = """
local file = assert(io.open(os.getenv("REQUEST_FILE"), "rb"))
local raw = file:read("*a")
file:close()
request = function() return raw end
done = function(summary, latency, requests)
  io.write(string.format('WRK_JSON {"requests": %d, "duration_us": %d, "non_2xx": %d, "errors": %d}\\n',
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""


def wrk_capacity(url: str, request: bytes, connections: int, seconds: float, cpus: str | None) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        script, raw = Path(tmp) / "raw.lua", Path(tmp) / "request"
        script.write_text(WRK_SCRIPT)
        raw.write_bytes(request)
        command = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "5s", "-s", str(script), url]
        if cpus is not None:
            command = ["taskset", "-c", cpus, *command]
        output = subprocess.run(command, capture_output=True, text=True, check=True, timeout=seconds + 60,
                                env={**os.environ, "REQUEST_FILE": str(raw)}).stdout
    line = next(l for l in output.splitlines() if l.startswith("WRK_JSON "))
    result = json.loads(line.removeprefix("WRK_JSON "))
    return float((result["requests"] - result["non_2xx"]) / (result["duration_us"] / 1e6))


def capacity(url: str, request: bytes, connections: int = 32, seconds: float = 3.0, tool: str = "wrk",
             cpus: str | None = None, timeout_s: float = 5.0) -> float:
    """The closed-loop capacity: 200s a second with ``connections`` connections each sending
    ``request`` again as soon as it is answered, for ``seconds``. ``tool`` ``"wrk"`` (pinned to
    ``cpus`` with taskset if given; this generator when wrk is not installed) or ``"python"``."""
    if tool == "wrk" and shutil.which("wrk"):
        return wrk_capacity(url, request, connections, seconds, cpus)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(closed_loop_async(url, request, connections, seconds, timeout_s))


# --- the command ------------------------------------------------------------------------------


def card_example_body(rows: int = 1, form: str = "instances") -> bytes:
    """``rows`` copies of the bundled model card's example row, in the ``instances`` form (or
    ``"data"``: the features + data form)."""
    from online_inference.app.settings import BUNDLED_MODEL
    from online_inference.app.model.session import ModelSession

    card = ModelSession(BUNDLED_MODEL.read_bytes()).card
    if form == "data":
        return json.dumps({"features": card.feature_names, "data": [[f.example for f in card.features]] * rows}).encode()
    return json.dumps({"instances": [{f.name: f.example for f in card.features}] * rows}).encode()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="e.g. http://127.0.0.1:8000/predict")
    parser.add_argument("--rate", type=float, help="arrivals a second (or --capacity-factor)")
    parser.add_argument("--capacity-factor", type=float, help="measure the closed-loop capacity first, offer this multiple of it")
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--timeout", type=float, default=5)
    parser.add_argument("--max-connections", type=int, default=256)
    parser.add_argument("--rss-pid", type=int)
    parser.add_argument("--body", type=Path, help="a file with the POST body (default: the bundled card's example row)")
    parser.add_argument("--rows", type=int, default=1, help="rows of the card's example in the default body")
    parser.add_argument("--get", action="store_true", help="send GET requests, no body")
    parser.add_argument("--output", type=Path, help="write the whole result (with the time series) as JSON here")
    args = parser.parse_args(argv)
    if (args.rate is None) == (args.capacity_factor is None):
        parser.error("give one of --rate and --capacity-factor")
    request = http_request(args.url) if args.get else http_request(args.url, args.body.read_bytes() if args.body else card_example_body(args.rows))
    rate = args.rate
    if rate is None:
        measured = capacity(args.url, request)
        rate = measured * args.capacity_factor
        print(f"closed-loop capacity {measured:,.0f} req/s; offering {rate:,.0f}", file=sys.stderr)
    result = run(args.url, [request], rate, args.duration, args.timeout, args.max_connections, args.rss_pid)
    full = result.to_dict()
    if args.output:
        args.output.write_text(json.dumps(full, indent=1) + "\n")
    print(json.dumps({k: v for k, v in full.items() if k != "series"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
