"""``python -m online_inference.bench.balanced_crowd``: does a per-server ``maxconn`` with a short
``timeout queue`` in the shipped haproxy configuration bound the latency of a crowd on this
machine? One replica on core 0, haproxy and the open-loop generator on the other core; 100-row
requests at twice the capacity measured through haproxy (wrk, 32 connections), for 8 s, through
``--connections`` client connections, every setting of the service at its default. Runs the
shipped configuration, then the same with ``maxconn`` on each server and ``timeout queue``
shortened (written to a temporary file), and prints each run's outcomes and latencies of the 200s
(from the clock) as JSON. docs/ARCHITECTURE.md ("Where a test cannot reach") quotes a run."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from online_inference.bench import balancer, openloop
from online_inference.bench.server import serve
from online_inference.bench.wire import http_request

ROWS = 100


def with_server_queue(config: str, maxconn: int, queue: str) -> str:
    """The configuration with ``maxconn`` on every server and ``timeout queue`` set to ``queue``."""
    lines = []
    for line in config.splitlines():
        if line.strip().startswith("default-server "):
            line = line.replace("default-server ", f"default-server maxconn {maxconn} ", 1)
        elif line.strip().startswith("timeout queue "):
            line = f"    timeout queue {queue}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def crowd(config: Path, connections: int) -> dict[str, Any]:
    """One run behind haproxy on ``config``: its capacity, outcomes and the 200s' latencies."""
    with serve("onnx", cpus="0", env=openloop.SERVER_KEEP_ALIVE) as server, tempfile.TemporaryDirectory() as folder:
        with balancer.haproxy({"replica1": server.url.removeprefix("http://")}, Path(folder), config=config) as front:
            front.wait_status("replica1", balancer.is_up, 10)
            url = front.url + "/predict"
            request = http_request(url, openloop.card_example_body(ROWS))
            capacity = openloop.capacity(url, request, connections=32, seconds=3, cpus="1")
            result = openloop.run(url, [request], rate_per_s=2 * capacity, duration_s=8, timeout_s=30,
                                  max_connections=connections, warm_connections=min(connections, 900), core=1)
    summary = result.summary()
    latency = summary["latency_200"]
    return {"capacity_rps": round(capacity), "offered_rps": round(2 * capacity), "outcomes": summary["outcomes"],
            **{f"{name}_ms": latency.get(f"{name}_ms") for name in ("p50", "p99", "max")}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=2048)
    parser.add_argument("--maxconn", type=int, default=64)
    parser.add_argument("--queue", default="500ms", help="timeout queue, in haproxy's units")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        queued = Path(folder) / "haproxy.cfg"
        queued.write_text(with_server_queue(balancer.HAPROXY_CFG.read_text(), args.maxconn, args.queue))
        runs = {"shipped": crowd(balancer.HAPROXY_CFG, args.connections),
                f"maxconn_{args.maxconn}_queue_{args.queue}": crowd(queued, args.connections)}
    print(json.dumps({"connections": args.connections, "rows": ROWS, "runs": runs}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
