"""``python -m online_inference.bench.memory``: what one request really costs in memory, per body
form, per path and per parser, for the budget of requests in flight (issue #29), which charges
each request ``FIXED + body_bytes × FACTOR(route)`` at admission. Writes ``results/memory.json``
and prints a table.

Method.

- **Per request** (``requests``): each measurement runs in a fresh subprocess, so that no
  allocator state carries over. The child reads the body (from a file the parent wrote: the
  parent's copy is not the server's cost) and builds the real ASGI application
  (:func:`~online_inference.app.main.create_app`, the bundled model), runs its lifespan until the
  data plane serves, and drives it with ASGI messages in memory: ``receive`` hands the body over
  in 64 KiB chunks, each a fresh ``bytes`` as uvicorn delivers them; ``send`` keeps only the
  answer's length. It sends the same request ``WARMUPS`` times (imports, caches, code pages),
  then collects garbage and returns the allocator's free memory to the system
  (``malloc_trim(0)``: otherwise the measured request would reuse what its warm-ups freed, while
  concurrent requests each need their own), resets the high-water mark
  (``/proc/self/clear_refs`` ← ``5``), reads VmRSS, sends the measured request, and reads VmHWM.
  The cost is VmHWM − VmRSS before: everything the request held at its peak, the body as
  delivered included, and its answer until it is "written" (handed to ``send``). Each case runs
  ``--repeats`` times, each in its own process: the max and the median are kept, and the factor
  is cost / body bytes.
- **Per parser** (``parsers``): the same, around one parser's call on a valid body (the fast
  path's orjson and simdjson readers, the duplicate-key scan with ``json``, pydantic's
  ``validate_json`` of the full path, pydantic's V2 request model), to show which part of a
  path's cost parsing is.
- **Fixed costs** (``fixed``): the real process (``python -m online_inference.app``,
  ``PORT=0``), its VmRSS once ``/health`` is 200 and after a warm-up of a few small requests of
  every kind (the idle service); then ``CONNECTIONS`` idle keep-alive connections are opened (RSS
  growth / connections = per connection), then each sends a request head and the start of its
  body (RSS growth / requests = per request in flight, waiting for its body: the hot path's
  ``/predict``, and the FastAPI route of V2 in another fresh process). The deadlines are raised
  for the measurement so that no connection closes meanwhile.

Bodies: random valid rows (``--seed``), every numeric feature uniform within its plausible bounds
(so most rows carry training-range warnings, the largest answers; one case draws within the
training range: no warnings) written at full precision (``54.12345678901234``), codes as integers.
An invalid body has one value out of bounds in its last row (the fast path reads it all, then
declines it; the route explains it with pydantic). At ``MAX_BATCH_ROWS`` rows no form comes near
``MAX_BODY_BYTES``, so each form is also measured with the same rows padded with spaces after
every comma (as a pretty-printer would) to just under ``MAX_BODY_BYTES``: whitespace costs
nothing to parse, so the factor of a padded body is lower, and the real rows give the maximum.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import gc
import http.client
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from online_inference.app.config import BUNDLED_MODEL
from online_inference.bench.bodies import (PADDED_BYTES, data_body, instances_body, padded, random_rows, spoil_last_row, v2_binary_body,
                                           v2_json_body)
from online_inference.app.session import ModelSession
from online_inference.card import ModelCard
from online_inference.procfs import socket_inodes, status_kb
from online_inference.provenance import provenance

RESULTS = Path(__file__).resolve().parent / "results"
CHUNK_BYTES = 64 * 1024  # what uvicorn hands over per receive() of a large body (its high-water mark)
WARMUPS = 2
MAX_ROWS = 10_000  # the settings' defaults: MAX_BATCH_ROWS
CONNECTIONS = 2000
PREDICT = "/predict"
V2_BINARY_MEDIA = "application/octet-stream"

Message = dict[str, Any]


# --- bodies ---------------------------------------------------------------------------------------


def card() -> ModelCard:
    return ModelSession(BUNDLED_MODEL.read_bytes()).card


def v2_path(model: ModelCard) -> str:
    return f"/v2/models/{model.name}/infer"


# --- cases ----------------------------------------------------------------------------------------


@dataclass
class Case:
    """One request to measure, and what it is."""

    budget_route: str  # what the budget charges by: route and outcome
    path: str
    form: str
    parser: str
    valid: bool
    rows: int
    padded: bool
    body_file: str
    body_bytes: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    values: str = "bounds"  # where the numeric values were drawn: bounds or training range

    @property
    def label(self) -> str:
        pad = " padded" if self.padded else ""
        values = "" if self.values == "bounds" else f" ({self.values} values)"
        return f"{self.budget_route} {self.form}{pad} {self.rows} rows{values}"


HOT = "orjson"
PREDICT_INVALID = "fast path ×2 (hot path, route) + json (duplicate keys) + pydantic validate_json"
V2_JSON = "pydantic (V2 request) + pydantic (rows)"
V2_BINARY = "pydantic (V2 head) + numpy → Python floats + pydantic (rows)"


def fast_parser(form: str, body_bytes: int) -> str:
    """Which reader the fast path uses for a body (fastpath.py): simdjson for a large data form."""
    if form == "data" and body_bytes >= 2048:
        return "simdjson (a fresh parser)" if body_bytes > 256 * 1024 else "simdjson (the kept parser)"
    return HOT


class Bodies:
    """Writes each body to a file for the children, and describes it as a Case."""

    def __init__(self, directory: Path, model: ModelCard):
        self.directory = directory
        self.model = model
        self.count = 0

    def write(self, body: bytes) -> str:
        self.count += 1
        path = self.directory / f"body-{self.count}.bin"
        path.write_bytes(body)
        return str(path)

    def predict(self, form: str, rows: list[list[float | int]], valid: bool, pad: bool, values: str = "bounds") -> Case:
        encode = data_body if form == "data" else instances_body
        body = encode(self.model, rows if valid else spoil_last_row(self.model, rows))
        body = padded(body) if pad else body
        parser = fast_parser(form, len(body)) if valid else PREDICT_INVALID
        route = "POST /predict valid" if valid else "POST /predict invalid"
        path = "hot path" if valid else "FastAPI route"
        return Case(route, path, form, parser, valid, len(rows), pad, self.write(body), len(body),
                    [("content-type", "application/json")], values)

    def v2_json(self, rows: list[list[float | int]], valid: bool, nested: bool, pad: bool) -> Case:
        body = v2_json_body(self.model, rows if valid else spoil_last_row(self.model, rows), nested)
        body = padded(body) if pad else body
        route = "POST v2 infer JSON " + ("valid" if valid else "invalid")
        return Case(route, "FastAPI route", "nested data" if nested else "flat data", V2_JSON, valid, len(rows), pad,
                    self.write(body), len(body), [("content-type", "application/json")])

    def over_the_row_limit(self, form: str) -> Case:
        """A body of real values, short ones (the card's example row), as many rows as fit in
        PADDED_BYTES: far more than MAX_BATCH_ROWS, refused (413) only once it is parsed."""
        example = [f.example for f in self.model.features]
        row = [int(v) if f.is_integral else v for v, f in zip(example, self.model.features)]
        encode: Callable[[list[list[float | int]]], bytes] = {
            "data": lambda rows: data_body(self.model, rows),
            "instances": lambda rows: instances_body(self.model, rows),
            "v2 flat": lambda rows: v2_json_body(self.model, rows, nested=False),
        }[form]
        per_row = len(encode([row] * 1000)) / 1000
        rows = [row] * int(PADDED_BYTES / per_row * 0.999)
        body = encode(rows)
        body += b" " * (PADDED_BYTES - len(body))
        if form == "v2 flat":
            return Case("POST v2 infer JSON over the row limit", "FastAPI route", "flat data", V2_JSON, False, len(rows),
                        False, self.write(body), len(body), [("content-type", "application/json")], "example")
        return Case("POST /predict over the row limit", "FastAPI route", form, PREDICT_INVALID, False, len(rows), False,
                    self.write(body), len(body), [("content-type", "application/json")], "example")

    def v2_binary(self, rows: list[list[float | int]], valid: bool) -> Case:
        body, head = v2_binary_body(self.model, rows if valid else spoil_last_row(self.model, rows))
        route = "POST v2 infer binary " + ("valid" if valid else "invalid")
        return Case(route, "FastAPI route", "binary tensor", V2_BINARY, valid, len(rows), False, self.write(body), len(body),
                    [("content-type", V2_BINARY_MEDIA), ("inference-header-content-length", str(head))])


def request_cases(bodies: Bodies, rng: np.random.Generator) -> list[Case]:
    model = bodies.model
    full = random_rows(model, MAX_ROWS, rng)
    tenth = full[: MAX_ROWS // 10]
    cases = []
    for form in ("data", "instances"):
        cases += [bodies.predict(form, full, True, False), bodies.predict(form, full, True, True),
                  bodies.predict(form, tenth, True, False),
                  bodies.predict(form, full, False, False), bodies.predict(form, full, False, True)]
    cases.append(bodies.predict("data", random_rows(model, MAX_ROWS, rng, "training"), True, False, "training"))
    cases += [bodies.v2_json(full, True, True, False), bodies.v2_json(full, True, False, False),
              bodies.v2_json(full, True, True, True), bodies.v2_json(full, False, True, False),
              bodies.v2_json(full, False, True, True)]
    cases += [bodies.v2_binary(full, True), bodies.v2_binary(tenth, True), bodies.v2_binary(full, False)]
    cases += [bodies.over_the_row_limit("data"), bodies.over_the_row_limit("instances"), bodies.over_the_row_limit("v2 flat")]
    return cases


PARSERS = {  # name: what the child calls on the body
    "orjson (fast path: parse_to_objects)": "objects",
    "simdjson (fast path: parse_to_buffer, a fresh parser)": "buffer",
    "json (find_duplicate_keys)": "duplicates",
    "pydantic (full path: validate_json)": "pydantic",
}


def parser_cases(bodies: Bodies, rng: np.random.Generator) -> list[Case]:
    model = bodies.model
    full = random_rows(model, MAX_ROWS, rng)
    cases = []
    for form, encode in (("data", data_body), ("instances", instances_body)):
        over = bodies.over_the_row_limit(form)
        variants = [(encode(model, full), False, MAX_ROWS, "bounds"), (padded(encode(model, full)), True, MAX_ROWS, "bounds"),
                    (Path(over.body_file).read_bytes(), False, over.rows, "example")]
        for body, pad, rows, values in variants:
            path = bodies.write(body)
            for name in PARSERS:
                if form == "instances" and "simdjson" in name:
                    continue  # the fast path never gives it the instances form
                cases.append(Case("parser", "in isolation", form, name, True, rows, pad, path, len(body), values=values))
    for pad in (False, True):
        body = padded(v2_json_body(model, full)) if pad else v2_json_body(model, full)
        cases.append(Case("parser", "in isolation", "V2 nested data", "pydantic (V2 request: parse_request)", True, MAX_ROWS,
                          pad, bodies.write(body), len(body)))
    return cases


# --- the child: one measurement -------------------------------------------------------------------


def status_bytes(name: str) -> int:
    """A field of this process's /proc status (VmRSS, VmHWM), in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return int(line.split()[1]) * 1024
    raise KeyError(name)


def release_free_memory() -> None:
    """Garbage collected, and the C allocator's free memory returned to the system (glibc)."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def reset_peak() -> int:
    """Free memory released, VmHWM reset to VmRSS (Linux); that VmRSS."""
    release_free_memory()
    Path("/proc/self/clear_refs").write_text("5")
    return status_bytes("VmRSS")


def peak_above_now(measured: Callable[[], Any]) -> tuple[int, Any]:
    """VmHWM during ``measured()`` minus VmRSS before it, and what it returned."""
    before = reset_peak()
    result = measured()
    return status_bytes("VmHWM") - before, result


def scope_of(case: Case, path: str, body_bytes: int) -> dict[str, Any]:
    """The ASGI scope of the case's request to ``path``, as uvicorn gives it."""
    headers = [(k.encode(), v.encode()) for k, v in case.headers] + [(b"content-length", str(body_bytes).encode()),
                                                                    (b"host", b"127.0.0.1")]
    return {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}, "http_version": "1.1", "method": "POST",
            "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
            "headers": headers, "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 50000)}


async def start_lifespan(app: Any) -> asyncio.Task[None]:
    """The application's lifespan, started (the model loads in its thread) and left running."""
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    started = asyncio.Event()
    await inbox.put({"type": "lifespan.startup"})

    async def send(message: Message) -> None:
        if message["type"] == "lifespan.startup.complete":
            started.set()

    task = asyncio.ensure_future(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, inbox.get, send))
    await started.wait()
    while app.plane.served is None:
        if app.plane.state == "failed":
            raise RuntimeError(f"the model failed to load: {app.plane.reason}")
        await asyncio.sleep(0.01)
    return task


async def one_request(app: Any, scope: dict[str, Any], body: bytes) -> tuple[int, int]:
    """The request through the application, its body in CHUNK_BYTES pieces; (status, answer bytes)."""
    offsets = list(range(0, len(body), CHUNK_BYTES)) or [0]
    answer = {"status": 0, "bytes": 0}

    async def receive() -> Message:
        if offsets:
            start = offsets.pop(0)
            return {"type": "http.request", "body": body[start:start + CHUNK_BYTES], "more_body": bool(offsets)}
        await asyncio.Future()  # the client waits for its answer: no disconnect
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
        elif message["type"] == "http.response.body":
            answer["bytes"] += len(message.get("body", b""))

    await app(scope, receive, send)
    return answer["status"], answer["bytes"]


def measure_request(case: Case) -> dict[str, Any]:
    import uvloop

    from online_inference.app.main import create_app

    body = Path(case.body_file).read_bytes()
    app = create_app()

    async def run() -> dict[str, Any]:
        lifespan = await start_lifespan(app)
        path = PREDICT if case.budget_route.startswith("POST /predict") else v2_path(app.plane.served.card)
        scope = scope_of(case, path, len(body))
        for _ in range(WARMUPS):
            await one_request(app, scope, body)
        before = reset_peak()
        status, answer = await one_request(app, scope, body)
        cost = status_bytes("VmHWM") - before
        lifespan.cancel()
        return {"cost_bytes": cost, "status": status, "answer_bytes": answer}

    return uvloop.run(run())


def parser_call(name: str, app: Any) -> Callable[[bytes], Any]:
    """The parser ``name`` of PARSERS (or V2's request model), as the service built it."""
    import simdjson

    from online_inference.app import v2
    from online_inference.app.schema import find_duplicate_keys

    served = app.plane.served
    calls: dict[str, Callable[[bytes], Any]] = {
        "objects": served.fast.parse_to_objects,
        "buffer": lambda body: served.fast.read_buffer(simdjson.Parser(), body),
        "duplicates": find_duplicate_keys,
        "pydantic": served.schema.request_adapter.validate_json,
        "v2": v2.parse_request,
    }
    return calls[name]


def measure_parser(case: Case) -> dict[str, Any]:
    from online_inference.app.main import create_app

    body = Path(case.body_file).read_bytes()
    app = create_app()
    app.plane.load()
    call = parser_call(PARSERS.get(case.parser, "v2"), app)

    def parse() -> Any:
        """What the parser made of the body, or the error it raised (pydantic's too_long...)."""
        try:
            return call(body)
        except Exception as error:  # noqa: BLE001  # a refusal is an outcome to record, not a failure
            return error

    for _ in range(WARMUPS):
        parse()
    cost, result = peak_above_now(parse)
    outcome = "refused" if isinstance(result, Exception) else "declined" if result is None else "parsed"
    return {"cost_bytes": cost, "status": outcome, "answer_bytes": 0}


def child_main(spec: str) -> int:
    payload = json.loads(spec)
    case = Case(**{**payload["case"], "headers": [tuple(h) for h in payload["case"]["headers"]]})
    measured = measure_parser(case) if payload["kind"] == "parser" else measure_request(case)
    print("MEMORY_JSON " + json.dumps(measured), flush=True)
    return 0


# --- the parent: running the children -------------------------------------------------------------


def run_child(kind: str, case: Case) -> dict[str, Any]:
    spec = json.dumps({"kind": kind, "case": asdict(case)})
    done = subprocess.run([sys.executable, "-m", "online_inference.bench.memory", "--child", spec],
                          capture_output=True, text=True, timeout=120)
    line = next((l for l in done.stdout.splitlines() if l.startswith("MEMORY_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"{case.label}: the child failed:\n{done.stderr[-3000:]}")
    return json.loads(line.removeprefix("MEMORY_JSON "))  # type: ignore[no-any-return]


def summarise(case: Case, runs: list[dict[str, Any]]) -> dict[str, Any]:
    costs = [r["cost_bytes"] for r in runs]
    answer = runs[0]["answer_bytes"]
    return {
        **{k: v for k, v in asdict(case).items() if k not in ("body_file", "headers")},
        "status": runs[0]["status"],
        "answer_bytes": answer,
        "answer_bytes_per_row": round(answer / case.rows, 1),
        "answer_per_body_byte": round(answer / case.body_bytes, 3),
        "cost_bytes": {"max": max(costs), "median": int(statistics.median(costs)), "runs": costs},
        "factor": {"max": round(max(costs) / case.body_bytes, 2), "median": round(statistics.median(costs) / case.body_bytes, 2)},
    }


def measure_cases(kind: str, cases: list[Case], repeats: int, workers: int) -> list[dict[str, Any]]:
    jobs = [(case, repeat) for case in cases for repeat in range(repeats)]
    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(lambda job: run_child(kind, job[0]), jobs))
    by_case: dict[int, list[dict[str, Any]]] = {}
    for (case, _), result in zip(jobs, results):
        by_case.setdefault(id(case), []).append(result)
    return [summarise(case, by_case[id(case)]) for case in cases]


# --- fixed costs: the real process ----------------------------------------------------------------


def post(port: int, path: str, body: bytes, headers: dict[str, str]) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("POST", path, body, headers)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def warm_up(port: int, model: ModelCard, rng: np.random.Generator) -> None:
    """A few small requests of every kind, valid and invalid."""
    rows = random_rows(model, 10, rng)
    json_headers = {"content-type": "application/json"}
    for _ in range(3):
        for valid in (True, False):
            some = rows if valid else spoil_last_row(model, rows)
            post(port, PREDICT, data_body(model, some), json_headers)
            post(port, PREDICT, instances_body(model, some), json_headers)
            post(port, v2_path(model), v2_json_body(model, some), json_headers)
            body, head = v2_binary_body(model, some)
            post(port, v2_path(model), body, {"content-type": V2_BINARY_MEDIA, "inference-header-content-length": str(head)})


def settled_rss(pid: int, timeout: float = 30.0) -> int:
    """VmRSS once it stops moving (three reads 0.2 s apart within 16 KiB), or at the deadline."""
    deadline = time.monotonic() + timeout
    readings = [status_kb(pid, "VmRSS")]
    while time.monotonic() < deadline:
        time.sleep(0.2)  # polling the server's memory, until the deadline
        readings.append(status_kb(pid, "VmRSS"))
        if len(readings) >= 3 and max(readings[-3:]) - min(readings[-3:]) <= 16:
            break
    return readings[-1] * 1024


def open_connections(port: int, pid: int, count: int) -> list[socket.socket]:
    """``count`` connections, once the server has accepted them all."""
    before = len(socket_inodes(pid))
    sockets = [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]
    deadline = time.monotonic() + 30
    while len(socket_inodes(pid)) < before + count and time.monotonic() < deadline:
        time.sleep(0.05)  # polling the server's accepted sockets, until the deadline
    return sockets


def partial_request(path: str, headers: dict[str, str], body: bytes) -> bytes:
    """A request's head and the first 100 bytes of its body: the server waits for the rest."""
    lines = [f"POST {path} HTTP/1.1", "host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items()),
             f"content-length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body[:100]


@contextlib.contextmanager
def service() -> Iterator[Any]:
    from online_inference.bench.server import serve

    patient = {"TIMEOUT_KEEP_ALIVE": "600", "TIMEOUT_HEADERS": "600", "TIMEOUT_BODY": "600"}
    with serve("onnx", cpus="0-1", env=patient) as running:
        yield running


def fixed_costs(model: ModelCard, rng: np.random.Generator, connections: int) -> dict[str, Any]:
    rows = random_rows(model, 10, rng)
    waiting = {
        "POST /predict (hot path, reading the body)": (PREDICT, data_body(model, rows)),
        "POST v2 infer (FastAPI route, reading the body)": (v2_path(model), v2_json_body(model, rows)),
    }
    result: dict[str, Any] = {"connections": connections, "per_request_in_flight": {}, "per_connection": {}}
    for name, (path, body) in waiting.items():
        with service() as running:
            pid, port = running.process.pid, int(running.url.rsplit(":", 1)[1])
            result.setdefault("rss_at_health_200_bytes", status_kb(pid, "VmRSS") * 1024)
            warm_up(port, model, rng)
            idle = settled_rss(pid)
            sockets = open_connections(port, pid, connections)
            with_connections = settled_rss(pid)
            head = partial_request(path, {"content-type": "application/json"}, body)
            for s in sockets:
                s.sendall(head)
            with_requests = settled_rss(pid)
            for s in sockets:
                s.close()
            result.setdefault("idle_rss_bytes", []).append(idle)
            result["per_connection"][name] = round((with_connections - idle) / connections)
            result["per_request_in_flight"][name] = round((with_requests - with_connections) / connections)
            result["request_head_bytes"] = len(head) - 100
    return result


# --- the report -----------------------------------------------------------------------------------


def factors_by_route(requests: list[dict[str, Any]]) -> dict[str, Any]:
    """Per budget route, the largest factor over its forms and sizes, and where it was measured."""
    worst: dict[str, Any] = {}
    for r in requests:
        known = worst.get(r["budget_route"])
        if known is None or r["factor"]["max"] > known["factor_max"]:
            worst[r["budget_route"]] = {"factor_max": r["factor"]["max"], "factor_median": r["factor"]["median"],
                                        "at": f"{r['form']}{' padded' if r['padded'] else ''}, {r['rows']} rows, {r['body_bytes']:,} bytes"}
    return worst


def render(results: dict[str, Any]) -> str:
    lines = [f"{'case':<66} {'parser':<44} {'body B':>10} {'cost max B':>12} {'med B':>12} {'factor':>7} {'med':>6} {'answer B/row':>12}"]
    for r in results["requests"] + results["parsers"]:
        pad = " padded" if r["padded"] else ""
        values = "" if r["values"] == "bounds" else f" ({r['values']} values)"
        name = f"{r['budget_route']}: {r['form']}{pad}, {r['rows']} rows{values}"
        lines.append(f"{name:<66.66} {r['parser']:<44.44} {r['body_bytes']:>10,} {r['cost_bytes']['max']:>12,} "
                     f"{r['cost_bytes']['median']:>12,} {r['factor']['max']:>7.2f} {r['factor']['median']:>6.2f} "
                     f"{r['answer_bytes_per_row']:>12.1f}")
    lines += ["", "FACTOR per route (max over forms and sizes):"]
    lines += [f"  {route:<32} {w['factor_max']:>6.2f} (median {w['factor_median']:.2f}) at {w['at']}"
              for route, w in results["factors_by_route"].items()]
    fixed = results["fixed"]
    lines += ["", f"idle RSS (after warm-up): {', '.join(f'{b / 2**20:.1f} MiB' for b in fixed['idle_rss_bytes'])}; "
              f"at /health 200: {fixed['rss_at_health_200_bytes'] / 2**20:.1f} MiB"]
    lines += [f"per idle connection ({name}): {b:,} B" for name, b in fixed["per_connection"].items()]
    lines += [f"per request in flight, beyond its connection ({name}): {b:,} B" for name, b in fixed["per_request_in_flight"].items()]
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    import onnxruntime
    import pydantic
    import simdjson

    return {"python": sys.version.split()[0], "numpy": np.__version__, "onnxruntime": onnxruntime.__version__,
            "pydantic": pydantic.__version__, "orjson": orjson.__version__,
            "simdjson": getattr(simdjson, "__version__", "unknown"), **provenance()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=29)
    parser.add_argument("--workers", type=int, default=2, help="children measured at once")
    parser.add_argument("--connections", type=int, default=CONNECTIONS)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.child:
        return child_main(args.child)
    started = time.perf_counter()
    model = card()
    with tempfile.TemporaryDirectory() as tmp:
        bodies = Bodies(Path(tmp), model)
        requests = measure_cases("request", request_cases(bodies, np.random.default_rng(args.seed)), args.repeats, args.workers)
        parsers = measure_cases("parser", parser_cases(bodies, np.random.default_rng(args.seed)), args.repeats, args.workers)
    fixed = fixed_costs(model, np.random.default_rng(args.seed), args.connections)
    results = {"settings": {"repeats": args.repeats, "seed": args.seed, "chunk_bytes": CHUNK_BYTES, "warmups": WARMUPS,
                            "padded_bytes": PADDED_BYTES, "seconds": 0.0, **machine()},
               "factors_by_route": factors_by_route(requests), "fixed": fixed, "requests": requests, "parsers": parsers}
    results["settings"]["seconds"] = round(time.perf_counter() - started, 1)
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "memory.json").write_text(json.dumps(results, indent=1) + "\n")
    print(render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
