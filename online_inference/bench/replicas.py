"""``python -m online_inference.bench.replicas`` (``make replicas``): what 1, 2 and 3 replicas of
the service behind haproxy (the shipped deploy/haproxy/haproxy.cfg) answer on this machine, against
one replica alone. wrk posts single-row bodies at 32 connections (post.lua, as ``make bench``'s
``single_c32``); each configuration is measured in every round, in alternating order, and the
figures are the medians over the rounds. Writes ``results/replicas.json``.

Nothing is pinned: the replicas, haproxy and wrk share every core, as they would on one small
host, so the figures say what more replicas buy on *this* machine (``nproc`` in the results), not
on a bigger one. The replicas are the service's own processes (``bench.server.serve``); the
replicas a configuration leaves out are put in haproxy's maintenance state, and stay idle."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

from online_inference.bench.balancer import SLOTS, Balancer, haproxy, haproxy_binary, is_up
from online_inference.bench.run_bench import LUA, RESULTS, body_file, python_description, served_and_calls
from online_inference.bench.server import Service, serve
from online_inference.provenance import provenance

CONNECTIONS = 32
DIRECT = "direct_1"  # wrk straight to one replica: the reference without haproxy
CONFIGURATIONS = {DIRECT: 1, "haproxy_1": 1, "haproxy_2": 2, "haproxy_3": 3}  # name: replicas in rotation
OUTPUT = RESULTS / "replicas.json"


def log(message: str) -> None:
    print(f"[replicas] {message}", file=sys.stderr, flush=True)


def run_wrk(url: str, body: Path, seconds: float) -> dict[str, float]:
    """One wrk run (one thread, unpinned), its summary line parsed, plus requests/s."""
    command = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{max(1, round(seconds))}s", "--timeout", "5s", "-s", str(LUA),
               url + "/predict"]
    output = subprocess.run(command, capture_output=True, text=True, check=True, timeout=seconds + 60,
                            env={**os.environ, "BODY_FILE": str(body)}).stdout
    line = next(l for l in output.splitlines() if l.startswith("WRK_JSON "))
    result: dict[str, float] = json.loads(line.removeprefix("WRK_JSON "))
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


def counted(services: list[Service], url: str, body: Path, seconds: float) -> dict[str, float]:
    """:func:`run_wrk`, with the requests per model call over every replica (small requests that
    arrive together at one replica share one call), from the replicas' own metrics."""
    before = [served_and_calls(s) for s in services]
    result = run_wrk(url, body, seconds)
    after = [served_and_calls(s) for s in services]
    served = sum(a[0] - b[0] for a, b in zip(after, before))
    calls = sum(a[1] - b[1] for a, b in zip(after, before))
    result["requests_per_model_call"] = served / max(calls, 1)
    return result


def in_rotation(balancer: Balancer, count: int) -> None:
    """The first ``count`` slots ready (and up, as haproxy's checks see them), the others in maintenance."""
    for i, slot in enumerate(SLOTS):
        balancer.set_state(slot, "ready" if i < count else "maint")
    for slot in SLOTS[:count]:
        balancer.wait_status(slot, is_up, 15)


def check_same_answer(direct: Service, balancer: Balancer, body: Path) -> None:
    """haproxy answers the body with the bytes a replica answers, from every replica."""
    content = body.read_bytes()
    headers = {"Content-Type": "application/json"}
    expected = httpx.post(direct.url + "/predict", content=content, headers=headers, timeout=30).content
    for _ in SLOTS:
        answer = httpx.post(balancer.url + "/predict", content=content, headers=headers, timeout=30)
        if answer.status_code != 200 or answer.content != expected:
            raise AssertionError(f"haproxy answered {answer.status_code}: {answer.content[:200]!r}")


def errors(result: dict[str, float]) -> float:
    return result["connect_errors"] + result["read_errors"] + result["write_errors"] + result["timeouts"] + result["non_2xx"]


def summarize(runs: dict[str, list[dict[str, float]]], args: argparse.Namespace, load: tuple[float, float, float]) -> dict[str, Any]:
    """Medians per configuration, and each one's ratio to one replica behind haproxy and to one
    alone (the median of the per-round ratios)."""
    def ratio(name: str, reference: str) -> float:
        return float(statistics.median(r["rps"] / o["rps"] for r, o in zip(runs[name], runs[reference])))

    configurations = {
        name: {"replicas": CONFIGURATIONS[name], "through_haproxy": name != DIRECT,
               "rps": float(statistics.median(r["rps"] for r in rs)),
               "p50_ms": float(statistics.median(r["p50_us"] for r in rs)) / 1000,
               "p99_ms": float(statistics.median(r["p99_us"] for r in rs)) / 1000,
               "errors": sum(errors(r) for r in rs),
               "requests_per_model_call": float(statistics.median(r["requests_per_model_call"] for r in rs)),
               "ratio_to_haproxy_1": ratio(name, "haproxy_1"), "ratio_to_direct_1": ratio(name, DIRECT),
               "rounds": rs}
        for name, rs in runs.items()}
    return {"settings": {"rounds": args.rounds, "seconds": args.seconds, "quick": args.quick, "connections": CONNECTIONS,
                         "rows_per_request": 1, "cpu": "unpinned: replicas, haproxy and wrk share every core",
                         "nproc": os.cpu_count(), "loadavg_at_start": list(load), "haproxy": haproxy_version(),
                         "python": python_description(), **provenance()},
            "configurations": configurations}


def haproxy_version() -> str:
    return subprocess.run([haproxy_binary(), "-v"], capture_output=True, text=True, check=True).stdout.splitlines()[0]


def render(results: dict[str, Any]) -> str:
    """The README's table (``make docs``), from the recorded results."""
    s = results["settings"]
    lines = [f"Single-row requests at {s['connections']} connections, {s['nproc']} cores shared by everything, "
             f"median of {s['rounds']} rounds of {s['seconds']:g} s ({s['haproxy'].split(' - ')[0]}, commit "
             f"`{s['commit'][:12]}`, `make replicas`):", "",
             "| Replicas | Path | Requests/s | p50 (ms) | p99 (ms) | × 1 behind haproxy | × 1 alone | Requests per model call | Errors |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, c in results["configurations"].items():
        path = "wrk → haproxy → replicas" if c["through_haproxy"] else "wrk → replica"
        lines.append(f"| {c['replicas']} | {path} | {c['rps']:,.0f} | {c['p50_ms']:.2f} | {c['p99_ms']:.2f} | "
                     f"{c['ratio_to_haproxy_1']:.2f} | {c['ratio_to_direct_1']:.2f} | {c['requests_per_model_call']:.1f} | {c['errors']:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--quick", action="store_true", help="one short round: proves the script works")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.seconds = 1, 2
    load = os.getloadavg()
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in CONFIGURATIONS}
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        body = body_file(1, Path(tmp))
        services = [stack.enter_context(serve("onnx", cpus=f"0-{(os.cpu_count() or 1) - 1}")) for _ in SLOTS]
        balancer = stack.enter_context(haproxy({slot: s.url.removeprefix("http://") for slot, s in zip(SLOTS, services)},
                                               Path(tmp)))
        in_rotation(balancer, len(SLOTS))
        check_same_answer(services[0], balancer, body)
        for round_ in range(args.rounds):
            names = list(CONFIGURATIONS) if round_ % 2 == 0 else list(CONFIGURATIONS)[::-1]
            for name in names:
                in_rotation(balancer, CONFIGURATIONS[name])
                result = counted(services, balancer.url if name != DIRECT else services[0].url, body, args.seconds)
                runs[name].append(result)
                log(f"round {round_ + 1} {name}: {result['rps']:,.0f} req/s, p99 {result['p99_us'] / 1000:.2f} ms, "
                    f"{errors(result):.0f} errors")
    results = summarize(runs, args, load)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=1) + "\n")
    log(f"wrote {args.output}")
    print(render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
