"""``python -m online_inference.bench.load`` (part of ``make bench``): the service under a crowd and
under overload, over time, for the README's charts. Writes ``results/load.json``.

- **crowd**: 96 clients upload ~7.5 MB bodies slowly at once (:mod:`crowd`), the default budget;
  the server's RSS every 100 ms, and when each client was answered, 200 or 503.
- **overload**: arrivals on a clock (:mod:`openloop`) at twice the closed-loop capacity of
  100-row requests (wrk, 32 connections, measured first), through 1,024 connections opened
  before the clock starts, with ``MAX_QUEUE_SECONDS`` at 0.1 s (tests/reliability/
  test_overload.py's setting: the default 0.5 s would need more connections than the machine's
  generator holds to be reached); then half the capacity, to show it served in full at once.

The server runs on core 0, pinned, the clients wherever the system puts them.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Any

from online_inference.bench import crowd, openloop
from online_inference.bench.wire import http_request
from online_inference.bench.server import serve
from online_inference.card import ModelCard

RESULTS = Path(__file__).resolve().parent / "results" / "load.json"
CLIENTS = 96
QUEUE_SECONDS = 0.1
CONNECTIONS = 1024


def bundled_card() -> ModelCard:
    from online_inference.app.settings import BUNDLED_MODEL
    from online_inference.app.model.session import ModelSession

    return ModelSession(BUNDLED_MODEL.read_bytes()).card


def measure_crowd() -> dict[str, Any]:
    with serve("onnx", cpus="0") as server:
        idle = server.rss_mb()
        uploads = crowd.crowd(bundled_card(), CLIENTS)
        samples = crowd.run(server.url, uploads, server.process.pid)
        return {"clients": CLIENTS, "body_bytes": crowd.BODY_BYTES, "upload_seconds": crowd.UPLOAD_SECONDS,
                "outcomes": dict(Counter(u.outcome for u in uploads)), "idle_rss_mb": round(idle, 1),
                "peak_rss_mb": round(server.peak_rss_mb(), 1), "after_rss_mb": round(server.rss_mb(), 1),
                "series": crowd.series(uploads, samples)}


def measure_overload(seconds: float) -> dict[str, Any]:
    with serve("onnx", cpus="0", env={**openloop.SERVER_KEEP_ALIVE, "MAX_QUEUE_SECONDS": str(QUEUE_SECONDS)}) as server:
        url = server.url + "/predict"
        request = http_request(url, openloop.card_example_body(100))
        capacity = openloop.capacity(url, request, connections=32, seconds=3, cpus="1")
        over = openloop.run(url, [request], rate_per_s=2 * capacity, duration_s=seconds, timeout_s=30,
                            max_connections=CONNECTIONS, warm_connections=CONNECTIONS, rss_pid=server.process.pid, core=1)
        after = openloop.run(url, [request], rate_per_s=capacity / 2, duration_s=3, timeout_s=5, max_connections=CONNECTIONS,
                             warm_connections=32, core=1)
        summary = over.summary()
        return {"capacity_per_s": round(capacity, 1), "max_queue_seconds": QUEUE_SECONDS, "connections": CONNECTIONS,
                "offered_per_s": round(summary["offered_rate_per_s"], 1), "served_per_s": round(summary["served_rate_per_s"], 1),
                "served_of_capacity": round(summary["served_rate_per_s"] / capacity, 3),
                "shed_fraction": round(summary["shed_fraction"], 3), "outcomes": summary["outcomes"],
                "latency_200_ms": summary["latency_200"], "peak_rss_mb": summary["peak_rss_mb"],
                "after": after.summary()["outcomes"], "duration_s": seconds, "series": over.series()}


def render(results: dict[str, Any]) -> str:
    """The README's table of both runs."""
    c, o = results["crowd"], results["overload"]
    shed = o["outcomes"].get("503_retry_after", 0)
    return "\n".join([
        "| Run | Offered | Answered 200 | Answered 503 (Retry-After) | Failures | Latency of the 200s | Peak RSS |",
        "|---|---|---|---|---|---|---|",
        f"| crowd: {c['clients']} uploads of {c['body_bytes'] / 1e6:.1f} MB over {c['upload_seconds']:g} s | at once | "
        f"{c['outcomes'].get('200', 0)} | {c['outcomes'].get('503', 0)} | "
        f"{sum(n for k, n in c['outcomes'].items() if k not in ('200', '503'))} | | "
        f"{c['peak_rss_mb']:.0f} MB (idle {c['idle_rss_mb']:.0f}, after {c['after_rss_mb']:.0f}) |",
        f"| overload: 100-row requests, {o['connections']:,} connections, `MAX_QUEUE_SECONDS={o['max_queue_seconds']:g}` | "
        f"{o['offered_per_s']:,.0f}/s (2x the capacity, {o['capacity_per_s']:,.0f}/s) | {o['served_per_s']:,.0f}/s "
        f"({o['served_of_capacity']:.2f} of the capacity) | {shed:,} ({o['shed_fraction']:.0%}) | "
        f"{sum(n for k, n in o['outcomes'].items() if k not in ('200', '503_retry_after'))} | "
        f"p50 {o['latency_200_ms']['p50_ms']:.0f} ms, p99 {o['latency_200_ms']['p99_ms']:.0f} ms | {o['peak_rss_mb']:.0f} MB |",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10, help="of overload")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    results = {"crowd": measure_crowd(), "overload": measure_overload(args.seconds)}
    args.output.write_text(json.dumps(results, indent=1) + "\n")
    for name, result in results.items():
        print(name, {k: v for k, v in result.items() if k != "series"})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
