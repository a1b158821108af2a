"""``python -m online_inference.bench.costs`` (run by ``make bench``): the in-process costs that
``docs/ARCHITECTURE.md`` quotes for the service's design choices, measured on the bundled model.
Writes ``results/costs.json`` and ``results/costs.md`` (rendered into the architecture document).

Each figure is the median of ``--repeats`` timings of ``--calls`` calls, in microseconds per call,
on one core, in a tight loop: the caches are warm, so they are smaller than the same work between
a server's requests, but the comparisons between them hold.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import uvloop

from online_inference.app.settings import BUNDLED_MODEL, Settings
from online_inference.app.compose import create_app
from online_inference.app.model.session import ModelSession
from online_inference.provenance import provenance

RESULTS = Path(__file__).resolve().parent / "results"
BETWEEN_CALLS = 2 * 1024 * 1024  # what a busy server touches between two model calls, about: a dozen requests' work


def per_call(function: Callable[[], Any], calls: int, repeats: int) -> float:
    for _ in range(calls // 10):
        function()
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(calls):
            function()
        timings.append((time.perf_counter() - started) / calls * 1e6)
    return round(statistics.median(timings), 2)


def per_request(app: Any, body: bytes, calls: int, repeats: int) -> float:
    """One ``POST /predict`` through the application (the front first), ASGI messages in memory."""
    scope = {"type": "http", "method": "POST", "path": "/predict",
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]}
    message = {"type": "http.request", "body": body, "more_body": False}

    async def receive() -> dict[str, Any]:
        return message

    async def send(_: dict[str, Any]) -> None:
        return None

    async def timed() -> float:
        async def one() -> None:
            await app(scope, receive, send)

        return await per_call_async(one, calls, repeats)

    return uvloop.run(timed())


def per_cold_call(function: Callable[[], Any], calls: int, repeats: int) -> float:
    """``function`` timed alone, with a busy server's work between calls: :data:`BETWEEN_CALLS`
    bytes touched and some Python run, so that the call finds its code and data out of the caches."""
    touched = bytearray(BETWEEN_CALLS)
    timings = []
    for _ in range(repeats):
        spent = 0.0
        for _ in range(calls):
            touched[::64] = bytes(len(touched[::64]))  # a byte of each cache line
            orjson.loads(orjson.dumps({str(i): [i, 0.5] for i in range(200)}))
            started = time.perf_counter()
            function()
            spent += time.perf_counter() - started
        timings.append(spent / calls * 1e6)
    return round(statistics.median(timings), 2)


async def per_call_async(function: Callable[[], Awaitable[None]], calls: int, repeats: int) -> float:
    for _ in range(calls // 10):
        await function()
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(calls):
            await function()
        timings.append((time.perf_counter() - started) / calls * 1e6)
    return round(statistics.median(timings), 2)


def rows_body(session: ModelSession, rows: int) -> bytes:
    row = [f.example for f in session.card.features]
    return orjson.dumps({"features": session.card.feature_names, "data": [row] * rows})


def measure(calls: int, repeats: int) -> dict[str, Any]:
    session = ModelSession(BUNDLED_MODEL.read_bytes())
    card = session.card
    X1 = np.array([[f.example for f in card.features]], np.float32)
    X32 = np.repeat(X1, 32, axis=0)
    feed = {card.input_name: X1}
    model = {
        "run_1_row": per_call(lambda: session.session.run(session.answer_names, feed), calls, repeats),
        "run_32_rows": per_call(lambda: session.session.run(session.answer_names, {card.input_name: X32}), calls, repeats),
        "run_32_rows_cold": per_cold_call(lambda: session.session.run(session.answer_names, {card.input_name: X32}),
                                          calls // 10, repeats),
    }
    app = create_app(Settings(), loader=lambda: session)
    app.plane.load()
    body = rows_body(session, 1)
    shared = per_request(app, body, calls, repeats)
    app.plane.may_share = lambda served, X: False  # type: ignore[method-assign]
    request = {"predict_1_row_shared_call": shared, "predict_1_row_own_call": per_request(app, body, calls, repeats)}
    from online_inference.app.protocols.native.request import predict_request

    fast = predict_request(app.plane.served).decoder
    parsing = {}
    for rows in (1, 24, 1000):
        text = rows_body(session, rows)
        count = max(calls // rows, 50)
        parsing[str(rows)] = {"bytes": len(text), "orjson": per_call(lambda: fast.parse_to_objects(text), count, repeats),
                              "simdjson": per_call(lambda: fast.parse_to_buffer(text), count, repeats)}
    return {"settings": {"calls": calls, "repeats": repeats, "python": sys.version.split()[0], **provenance()},
            "model_call_us": model, "request_us": request, "parse_us": parsing}


def render(r: dict[str, Any]) -> str:
    m, q, p = r["model_call_us"], r["request_us"], r["parse_us"]
    lines = [
        f"Measured by `make bench` (`python -m online_inference.bench.costs`) on commit `{r['settings']['commit'][:12]}`: "
        f"µs per call, median of {r['settings']['repeats']} × {r['settings']['calls']} calls in a tight loop.",
        "",
        "| What | µs |",
        "|---|---:|",
        f"| model call, 1 row, `InferenceSession.run` | {m['run_1_row']:.1f} |",
        f"| model call, 32 rows, `InferenceSession.run` | {m['run_32_rows']:.1f} |",
        f"| model call, 32 rows, with {BETWEEN_CALLS // 1024 // 1024} MB touched and other Python run between calls (caches cold, as in a busy server) | {m['run_32_rows_cold']:.1f} |",
        f"| one-row `/predict` through the front, sharing a model call (a loop turn) | {q['predict_1_row_shared_call']:.1f} |",
        f"| one-row `/predict` through the front, its own call at once | {q['predict_1_row_own_call']:.1f} |",
    ]
    for rows, t in p.items():
        lines.append(f"| parse and check {rows} row(s) ({t['bytes']:,} bytes): orjson / simdjson | {t['orjson']:.1f} / {t['simdjson']:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    cores = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cores)})  # one core, as the service runs
    try:
        results = measure(args.calls, args.repeats)
    finally:
        os.sched_setaffinity(0, cores)
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "costs.json").write_text(json.dumps(results, indent=1) + "\n")
    (args.output / "costs.md").write_text(render(results) + "\n")
    print(render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
