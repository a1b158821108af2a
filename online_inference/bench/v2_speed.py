"""``python -m online_inference.bench.v2_speed``: what a request takes through the real server, by
protocol, at 1, 1,000 and 10,000 rows: ``/predict`` (the ``features`` + ``data`` form), V2 JSON
and V2 binary, the same random full-precision rows (:mod:`bodies`). The service on core 0, one
client; each figure is the median of ``--requests`` round trips, in ms. The V2 issue (#30) holds
V2 to ``/predict``; docs/ARCHITECTURE.md ("The hot path and validation") quotes a run."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import httpx
import numpy as np

from online_inference.app.settings import BUNDLED_MODEL
from online_inference.app.model.session import ModelSession
from online_inference.bench.bodies import data_body, random_rows, v2_binary_body, v2_json_body
from online_inference.bench.server import serve

ROWS = (1, 1_000, 10_000)
JSON = {"content-type": "application/json"}


def median_ms(client: httpx.Client, url: str, body: bytes, headers: dict[str, str], requests: int) -> float:
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        response = client.post(url, content=body, headers=headers)
        times.append(time.perf_counter() - started)
        response.raise_for_status()
    return round(1000 * statistics.median(times), 2)


def measure(requests: int) -> dict[str, dict[str, float]]:
    card = ModelSession(BUNDLED_MODEL.read_bytes()).card
    results: dict[str, dict[str, float]] = {}
    with serve("onnx", cpus="0") as server, httpx.Client(timeout=60) as client:
        infer = f"{server.url}/v2/models/{card.name}/infer"
        for count in ROWS:
            rows = random_rows(card, count, np.random.default_rng(count))
            binary, head_length = v2_binary_body(card, rows)
            results[f"{count} rows"] = {
                "/predict": median_ms(client, server.url + "/predict", data_body(card, rows), JSON, requests),
                "v2 json": median_ms(client, infer, v2_json_body(card, rows), JSON, requests),
                "v2 binary": median_ms(client, infer, binary, {"content-type": "application/octet-stream",
                                                               "inference-header-content-length": str(head_length)}, requests),
            }
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=15)
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.requests)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
