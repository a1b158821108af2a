"""``python -m online_inference.devtools.docs [--check]``: regenerate the generated sections of the README
and of ``docs/ARCHITECTURE.md``.

Sections sit between ``<!-- BEGIN generated:NAME -->`` and ``<!-- END generated:NAME -->``; each
is rendered from its source (the settings class, the bundled model card, the size study, the
benchmark's results and its in-process costs, the replicas behind haproxy), so no table is typed
by hand; ``online_inference/deploy/haproxy/README.md`` has one too. The renderers are
:mod:`online_inference.devtools.sections`, one module per source. The charts of the
benchmark and of the size study are drawn from the same results (:mod:`online_inference.devtools.charts`).
``--check`` fails when a document or a chart is stale.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable

from online_inference.devtools.paths import (BENCH_RESULTS, CONTRIBUTION_COST_RESULTS, COSTS_RESULTS, DOCUMENTS, LOAD_RESULTS,
                                             PROTOCOLS_RESULTS, REPLICAS_RESULTS, ROOT, SIZE_RESULTS)
from online_inference.devtools.sections.card import render_card
from online_inference.devtools.sections.explain import explain_chart, render_explain
from online_inference.devtools.sections.results import recorded
from online_inference.devtools.sections.service import render_config, render_layout

SECTION = re.compile(r"(<!-- BEGIN generated:(?P<name>[a-z-]+) -->\n)(?P<body>.*?)(<!-- END generated:(?P=name) -->)", re.S)
RENDERERS: dict[str, Callable[[], str]] = {
    "config": render_config,
    "layout": render_layout,
    "card": render_card,
    "explain": render_explain,
    "size": recorded(SIZE_RESULTS, "online_inference.docker.size_render:render_summary", "make size-report"),
    "bench": recorded(BENCH_RESULTS, "online_inference.bench.render:render_summary", "make bench"),
    "costs": recorded(COSTS_RESULTS, "online_inference.bench.costs:render", "make bench"),
    "replicas": recorded(REPLICAS_RESULTS, "online_inference.bench.replicas:render", "make replicas"),
    "load": recorded(LOAD_RESULTS, "online_inference.bench.load:render", "make bench"),
    "protocols": recorded(PROTOCOLS_RESULTS, "online_inference.bench.protocol_speed:render", "make bench"),
    "contribution-cost": recorded(CONTRIBUTION_COST_RESULTS, "online_inference.bench.contribution_cost:render", "make bench"),
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
    from online_inference.bench.crowd import pod_memory_limit_mb
    from online_inference.devtools.charts import (BENCH_CHART, CROWD_CHART, EXPLAIN_CHART, OVERLOAD_CHART, SIZE_CHART, draw_bench,
                                                  draw_size, draw_timeline)

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
