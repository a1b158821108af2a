"""``python -m online_inference.bench.ab OLD NEW``: single-row throughput of two commits of the
service, A/B, on this machine (``--rows N``: N rows a request; ``--form data``: the features + data form).

Each commit is written out of git (``git archive``) into a temporary folder and started from
there as ``python -m online_inference.app`` (or, with ``--floor``, the constant-answer floor of
:mod:`floor_app`, which shows the protocol layer's cost alone), pinned to core 0; wrk, on core 1,
runs 32 keep-alive connections posting one row (or ``--rows``) for ``--seconds``, the card's example
in the instances form (or ``--form``). The commits alternate round by
round (a shared machine's speed drifts), and the result is each one's median and NEW's ratio to
OLD. With ``--paired`` both run at once instead, sharing core 0 (each with its own wrk on core 1),
so that whatever the machine does in a moment falls on both alike: the result is the median of
the rounds' ratios. docs/ARCHITECTURE.md
("Under load", "Shared model calls") quotes its runs."""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from online_inference.bench.openloop import capacity, card_example_body
from online_inference.bench.server import Service, serve
from online_inference.bench.wire import http_request

ROOT = Path(__file__).resolve().parents[2]


def checkout(commit: str, folder: Path) -> Path:
    """``commit``'s package, written into ``folder``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "online_inference"], check=True,
                             capture_output=True).stdout
    folder.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def rate(server: Service, seconds: float, body: bytes) -> float:
    """Requests/s of ``server``'s ``/predict``: wrk on core 1, 32 connections posting ``body``."""
    url = server.url + "/predict"
    return capacity(url, http_request(url, body), connections=32, seconds=seconds, cpus="1")


def measure(root: Path, floor: bool, seconds: float, body: bytes) -> float:
    """Requests/s of the service (or the floor) started from ``root``."""
    with serve("floor" if floor else "onnx", cpus="0", root=root) as server:
        return rate(server, seconds, body)


def measure_paired(roots: list[Path], floor: bool, seconds: float, body: bytes) -> list[float]:
    """Requests/s of the services (or floors) started from ``roots``, all at once on core 0."""
    kind = "floor" if floor else "onnx"
    with serve(kind, cpus="0", root=roots[0]) as first, serve(kind, cpus="0", root=roots[1]) as second:
        with ThreadPoolExecutor(2) as pool:
            return list(pool.map(lambda server: rate(server, seconds, body), (first, second)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--floor", action="store_true", help="the constant-answer floor instead of the service")
    parser.add_argument("--rows", type=int, default=1, help="rows a request")
    parser.add_argument("--form", choices=["instances", "data"], default="instances", help="the body's form")
    parser.add_argument("--paired", action="store_true", help="both at once on one core, the ratio of each round")
    args = parser.parse_args(argv)
    body = card_example_body(args.rows, args.form)
    commits = (args.old, args.new)
    with tempfile.TemporaryDirectory() as tmp:
        roots = [checkout(commit, Path(tmp) / str(i)) for i, commit in enumerate(commits)]
        runs: list[list[float]] = [[], []]
        for round_ in range(args.rounds):
            rates = (measure_paired(roots, args.floor, args.seconds, body) if args.paired
                     else [measure(root, args.floor, args.seconds, body) for root in roots])
            for run, rate in zip(runs, rates):
                run.append(rate)
            print(f"round {round_ + 1}: " + ", ".join(f"{c} {r:,.0f} req/s" for c, r in zip(commits, rates)), file=sys.stderr, flush=True)
    medians = [statistics.median(run) for run in runs]
    ratio = statistics.median(n / o for o, n in zip(*runs)) if args.paired else medians[1] / medians[0]
    print(json.dumps({"old": args.old, "new": args.new, "floor": args.floor, "rows": args.rows, "form": args.form,
                      "paired": args.paired, "rounds": args.rounds, "median_rps": dict(zip(commits, map(round, medians))),
                      "ratio": round(ratio, 3), "runs": dict(zip(commits, runs))}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
