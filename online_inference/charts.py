"""The charts of the recorded results, as SVG: the benchmark (``bench/results/bench.json``) and the
image-size study (``docker/results/size.json``). Drawn by ``make bench``, ``make size-report`` and
``make docs`` (through :mod:`online_inference.docs`, which also checks them), with matplotlib from
the dev set: never in an image. The same results and the same matplotlib give the same bytes
(no date, a fixed id salt), so a stale chart is found like a stale table."""

from __future__ import annotations

import io
import statistics
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("svg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)
from matplotlib.ticker import FuncFormatter, NullFormatter  # noqa: E402

PLAIN = FuncFormatter(lambda value, _: f"{value:,.0f}" if value >= 1 else f"{value:g}")  # not 10³, 2×10⁻¹

HERE = Path(__file__).resolve().parent
BENCH_CHART = HERE / "bench" / "results" / "bench.svg"
SIZE_CHART = HERE / "docker" / "results" / "size.svg"
SERVICE, BASELINE = "#2a6f97", "#c44536"


def svg(figure: Any) -> bytes:
    plt.rcParams["svg.hashsalt"] = "heart-online-inference"
    out = io.BytesIO()
    figure.savefig(out, format="svg", metadata={"Date": None}, bbox_inches="tight")
    plt.close(figure)
    return out.getvalue()


def percentile_ms(side: dict[str, Any], key: str) -> float:
    """The median over the rounds of one wrk percentile, in ms."""
    return statistics.median(r[key] for r in side["rounds"]) / 1000


def draw_bench(results: dict[str, Any]) -> bytes:
    """Throughput of the service and the baseline per scenario (log scale, with the ratio), and
    the latency percentiles at one connection."""
    s = results["scenarios"]
    scenarios = [("1 row, 32 conn.", s["single_c32"], "rps"), ("1 row, 1 conn.", s["single_c1"], "rps"),
                 ("1000 rows, 32 conn.", s["batch1000_c32"], "rows_per_s")]
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    x = range(len(scenarios))
    ours = [sc["onnx"][key] for _, sc, key in scenarios]
    theirs = [sc["baseline"][key] for _, sc, key in scenarios]
    left.bar([i - 0.2 for i in x], ours, 0.4, label="ONNX service", color=SERVICE)
    left.bar([i + 0.2 for i in x], theirs, 0.4, label="scikit-learn baseline", color=BASELINE)
    for i, (_, sc, _) in enumerate(scenarios):
        left.annotate(f"{sc['ratio_median']:.1f}×", (i - 0.2, ours[i]), ha="center", va="bottom", fontsize=9)
    left.set_yscale("log")
    left.yaxis.set_major_formatter(PLAIN)
    left.set_xticks(list(x), [name for name, _, _ in scenarios])
    left.set_ylabel("req/s (rows/s at 1000 rows), median of rounds")
    left.set_title("Throughput")
    left.legend(loc="upper left", fontsize=8)
    one = s["single_c1"]
    levels = [("p50", "p50_us"), ("p90", "p90_us"), ("p99", "p99_us")]
    y = range(len(levels))
    for offset, side, color in ((-0.2, one["onnx"], SERVICE), (0.2, one["baseline"], BASELINE)):
        values = [percentile_ms(side, key) for _, key in levels]
        right.bar([i + offset for i in y], values, 0.4, color=color)
        for i, value in enumerate(values):
            right.annotate(f"{value:.2f}", (i + offset, value), ha="center", va="bottom", fontsize=8)
    right.set_yscale("log")
    right.yaxis.set_major_formatter(PLAIN)
    right.yaxis.set_minor_formatter(NullFormatter())
    right.set_xticks(list(y), [name for name, _ in levels])
    right.set_ylabel("ms, median of rounds")
    right.set_title("Latency, 1 row, 1 connection")
    figure.suptitle(f"make bench on {results['settings'].get('commit', 'unknown')[:12]}", fontsize=9)
    return svg(figure)


def draw_size(results: dict[str, Any]) -> bytes:
    """Per step of the study: MB added above its base, and those layers gzipped."""
    steps = results["steps"]
    names = list(steps)
    figure, axis = plt.subplots(figsize=(9, 0.45 * len(names) + 1.2))
    y = range(len(names))
    axis.barh([i - 0.2 for i in y], [steps[n]["added_mb"] for n in names], 0.4, label="MB added above the base", color=SERVICE)
    axis.barh([i + 0.2 for i in y], [steps[n]["added_gzip_mb"] for n in names], 0.4, label="the same layers, gzipped",
              color=BASELINE)
    for i, name in enumerate(names):
        axis.annotate(f"{steps[name]['added_mb']:.0f}", (steps[name]["added_mb"], i - 0.2), va="center", fontsize=8,
                      xytext=(3, 0), textcoords="offset points")
    axis.set_yticks(list(y), names)
    axis.invert_yaxis()
    axis.set_xlabel("MB")
    axis.set_title(f"Image size per step (make size-report on {results['settings'].get('commit', 'unknown')[:12]})", fontsize=10)
    axis.legend(loc="lower right", fontsize=8)
    return svg(figure)
