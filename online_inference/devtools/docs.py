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
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from online_inference.app.settings import BUNDLED_MODEL, Settings
from online_inference.app.model.session import ModelSession

PACKAGE = Path(__file__).resolve().parents[1]
ROOT = PACKAGE.parent
README = ROOT / "README.md"
ARCHITECTURE = ROOT / "docs" / "ARCHITECTURE.md"
HAPROXY_README = ROOT / "online_inference" / "deploy" / "haproxy" / "README.md"
DOCUMENTS = (README, ARCHITECTURE, HAPROXY_README)
SIZE_RESULTS = PACKAGE / "docker" / "results" / "size.json"
BENCH_RESULTS = PACKAGE / "bench" / "results" / "bench.json"
COSTS_RESULTS = PACKAGE / "bench" / "results" / "costs.json"
REPLICAS_RESULTS = PACKAGE / "bench" / "results" / "replicas.json"
LOAD_RESULTS = PACKAGE / "bench" / "results" / "load.json"
PROTOCOLS_RESULTS = PACKAGE / "bench" / "results" / "protocols.json"
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
        "",
        "| Candidate compared | CV ROC AUC | CV accuracy |",
        "|---|---|---|",
        *(f"| `{c.classifier}({', '.join(f'{k}={v}' for k, v in c.params.items())})`"
          f"{' (chosen)' if (c.classifier, c.params) == (card.classifier, card.classifier_params) else ''} "
          f"| {c.metrics.roc_auc_mean:.4f} ± {c.metrics.roc_auc_std:.4f} | {c.metrics.accuracy_mean:.4f} ± {c.metrics.accuracy_std:.4f} |"
          for c in card.compared),
        "",
        "| # | Feature | Kind | Meaning | Codes | Accepted (400 outside) | Training range (warns outside) |",
        "|---|---|---|---|---|---|---|",
    ]
    for i, f in enumerate(card.features):
        codes = ", ".join(f"{k} {v}" for k, v in f.codes.items()) if f.codes else ""
        unit = f" ({f.unit})" if f.unit else ""
        lines.append(
            f"| {i} | `{f.name}` | {f.kind} | {f.description}{unit} | {codes} | "
            f"[{f.bounds.min:g}, {f.bounds.max:g}] | [{f.training.min:g}, {f.training.max:g}] |"
        )
    return "\n".join(lines)


def render_results(path: Path, render: Callable[[dict[str, Any]], str], how: str) -> Callable[[], str]:
    """A section rendered from a script's recorded results (JSON), by the script's own renderer:
    the figures come from the measurement, never from an edited summary."""
    def rendered() -> str:
        if not path.exists():
            return f"_Not measured yet: run `{how}`._"
        return render(json.loads(path.read_text())).strip()

    return rendered


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
    "size": render_results(SIZE_RESULTS, size_summary, "make size-report"),
    "bench": render_results(BENCH_RESULTS, bench_summary, "make bench"),
    "costs": render_results(COSTS_RESULTS, costs_summary, "make bench"),
    "replicas": render_results(REPLICAS_RESULTS, replicas_summary, "make replicas"),
    "load": render_results(LOAD_RESULTS, load_summary, "make bench"),
    "protocols": render_results(PROTOCOLS_RESULTS, protocols_summary, "make bench"),
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
    from online_inference.devtools.charts import (BENCH_CHART, CROWD_CHART, OVERLOAD_CHART, SIZE_CHART, draw_bench, draw_size,
                                         draw_timeline)

    from online_inference.bench.crowd import pod_memory_limit_mb

    load = json.loads(LOAD_RESULTS.read_text())
    return [(BENCH_CHART, draw_bench(json.loads(BENCH_RESULTS.read_text()))),
            (SIZE_CHART, draw_size(json.loads(SIZE_RESULTS.read_text()))),
            (CROWD_CHART, draw_timeline(load["crowd"]["series"], "96 uploads of 7.5 MB at once: RSS within the pod's "
                                        "limit; answered 200 or 503 (Retry-After)", pod_memory_limit_mb())),
            (OVERLOAD_CHART, draw_timeline(load["overload"], "Arrivals at twice the capacity: the excess shed at once, "
                                           "the 200s within MAX_QUEUE_SECONDS (0.1 s) plus their service time"))]


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
