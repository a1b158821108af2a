"""``python -m online_inference.bench.memory``: what one request really costs in memory, per body
form, per path and per parser, for the budget of requests in flight (issue #29), which charges
each request ``FIXED + body_bytes × FACTOR(route)`` at admission. Writes ``results/memory.json``
and prints a table.

Method.

- **Per request** (``requests``): each measurement runs in a fresh subprocess, so that no
  allocator state carries over. The child reads the body (from a file the parent wrote: the
  parent's copy is not the server's cost) and builds the real ASGI application
  (:func:`~online_inference.app.compose.create_app`, the bundled model), runs its lifespan until the
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
import contextlib
import http.client
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from online_inference.bench.bodies import (PADDED_BYTES, data_body, instances_body, random_rows, spoil_last_row, v2_binary_body, v2_json_body)
from online_inference.card import ModelCard
from online_inference.bench.memory_cases import (CHUNK_BYTES, PREDICT, V2_BINARY_MEDIA, WARMUPS, Bodies, Case, card, parser_cases,
                                                request_cases, v2_path)
from online_inference.devtools.procfs import socket_inodes, status_kb
from online_inference.provenance import provenance

RESULTS = Path(__file__).resolve().parent / "results"
CONNECTIONS = 2000


# --- the parent: running the children -------------------------------------------------------------


def run_child(kind: str, case: Case) -> dict[str, Any]:
    spec = json.dumps({"kind": kind, "case": asdict(case)})
    done = subprocess.run([sys.executable, "-m", "online_inference.bench.memory_child", spec],
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
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=29)
    parser.add_argument("--workers", type=int, default=2, help="children measured at once")
    parser.add_argument("--connections", type=int, default=CONNECTIONS)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
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
