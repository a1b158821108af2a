"""``python -m online_inference.bench.ab OLD NEW``: single-row throughput of two commits of the
service, A/B, on this machine (``--rows N``: N rows a request; ``--form data``: the features + data form).

Each commit is written out of git (``git archive``) into a temporary folder and started from
there as ``python -m online_inference.app`` (or, with ``--floor``, the constant-answer floor of
:mod:`floor_app`, which shows the protocol layer's cost alone), pinned to core 0; wrk, on core 1,
runs 32 keep-alive connections posting one row (or ``--rows``) for ``--seconds``, the card's example
in the instances form (or ``--form``). The commits alternate round by
round (a shared machine's speed drifts), and the result is each one's median and NEW's ratio to
OLD. docs/ARCHITECTURE.md ("Under load") quotes its runs."""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from online_inference.app.settings import BUNDLED_MODEL
from online_inference.app.model.session import ModelSession
from online_inference.bench.bodies import data_body, instances_body
from online_inference.bench.openloop import capacity
from online_inference.bench.server import serve
from online_inference.bench.wire import http_request

ROOT = Path(__file__).resolve().parents[2]


def checkout(commit: str, folder: Path) -> Path:
    """``commit``'s package, written into ``folder``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "online_inference"], check=True,
                             capture_output=True).stdout
    folder.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def example_body(rows: int, form: str) -> bytes:
    """``rows`` copies of the bundled card's example row, in ``form``."""
    card = ModelSession(BUNDLED_MODEL.read_bytes()).card
    return (data_body if form == "data" else instances_body)(card, [[f.example for f in card.features]] * rows)


def measure(root: Path, floor: bool, seconds: float, body: bytes) -> float:
    """Requests/s of the service (or the floor) started from ``root``."""
    with serve("floor" if floor else "onnx", cpus="0", root=root) as server:
        url = server.url + "/predict"
        return capacity(url, http_request(url, body), connections=32, seconds=seconds, cpus="1")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--floor", action="store_true", help="the constant-answer floor instead of the service")
    parser.add_argument("--rows", type=int, default=1, help="rows a request")
    parser.add_argument("--form", choices=["instances", "data"], default="instances", help="the body's form")
    args = parser.parse_args(argv)
    body = example_body(args.rows, args.form)
    with tempfile.TemporaryDirectory() as tmp:
        roots = {commit: checkout(commit, Path(tmp) / str(i)) for i, commit in enumerate((args.old, args.new))}
        runs: dict[str, list[float]] = {commit: [] for commit in roots}
        for round_ in range(args.rounds):
            for commit, root in roots.items():
                runs[commit].append(measure(root, args.floor, args.seconds, body))
            print(f"round {round_ + 1}: " + ", ".join(f"{c} {runs[c][-1]:,.0f} req/s" for c in runs), file=sys.stderr, flush=True)
    medians = {commit: statistics.median(values) for commit, values in runs.items()}
    print(json.dumps({"old": args.old, "new": args.new, "floor": args.floor, "rows": args.rows, "form": args.form, "rounds": args.rounds,
                      "median_rps": {c: round(m) for c, m in medians.items()},
                      "ratio": round(medians[args.new] / medians[args.old], 3), "runs": runs}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
