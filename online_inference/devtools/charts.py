"""The charts of the recorded results, as SVG: the benchmark (``bench/results/bench.json``), the
image-size study (``docker/results/size.json``), a load run's time series (:func:`draw_timeline`,
from ``bench/openloop.py``'s result), and one ``/explain`` answer of the bundled model as a waterfall
(:func:`draw_waterfall`). Drawn by ``make bench``, ``make size-report`` and
``make docs`` (through :mod:`online_inference.devtools.docs`, which also checks them), with matplotlib from
the dev set: never in an image. The same results and the same matplotlib give the same bytes
(no date, a fixed id salt), so a stale chart is found like a stale table."""

from __future__ import annotations

import io
import math
import statistics
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

matplotlib.use("svg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import FuncFormatter, NullFormatter  # noqa: E402

PLAIN = FuncFormatter(lambda value, _: f"{value:,.0f}" if value >= 1 else f"{value:g}")  # not 10³, 2×10⁻¹

HERE = Path(__file__).resolve().parents[1]  # the package
BENCH_CHART = HERE / "bench" / "results" / "bench.svg"
SIZE_CHART = HERE / "docker" / "results" / "size.svg"
CROWD_CHART = HERE / "bench" / "results" / "crowd.svg"
OVERLOAD_CHART = HERE / "bench" / "results" / "overload.svg"
EXPLAIN_CHART = HERE / "bench" / "results" / "explain.svg"
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


SHED, FAILED, LIMIT = "#e09f3e", "#7b2d26", "#555555"


def draw_timeline(series: list[dict[str, Any]] | dict[str, Any], title: str, rss_limit_mb: float | None = None) -> bytes:
    """A load run over time (``series``: the ``series`` of :meth:`online_inference.bench.loadresult.Result.to_dict`,
    or that whole dict), two panels: the server's RSS in MB, with a dashed line at
    ``rss_limit_mb`` if given; and the p50 and p99 latency of the requests answered 200 in each
    bucket (log scale, left) with the 503s and the failures a second (right). Given the whole
    dict, a dotted line marks the end of the arrivals (``duration_s``). Returns the SVG's bytes
    (write them where the chart belongs), deterministic like the other charts."""
    buckets = series["series"] if isinstance(series, dict) else series
    if not buckets:
        raise ValueError("an empty time series")
    t = [b["t_s"] for b in buckets]
    width = t[1] - t[0] if len(t) > 1 else 0.1
    figure, (memory, latency) = plt.subplots(2, 1, figsize=(10, 6), sharex=True, height_ratios=(1, 1.4))
    draw_rss(memory, t, buckets, rss_limit_mb)
    draw_latency(latency, t, buckets, width)
    if isinstance(series, dict) and "duration_s" in series:
        for axis in (memory, latency):
            axis.axvline(series["duration_s"], color=LIMIT, linestyle=":", linewidth=1)
        memory.annotate("last arrival", (series["duration_s"], 0), xycoords=("data", "axes fraction"), xytext=(3, 3),
                        textcoords="offset points", fontsize=8, color=LIMIT)
    latency.set_xlabel("seconds since the first arrival")
    figure.suptitle(title, fontsize=10)
    return svg(figure)


def nan_if_none(values: list[float | None]) -> list[float]:
    return [float("nan") if v is None else v for v in values]


def draw_rss(axis: Any, t: list[float], buckets: list[dict[str, Any]], limit_mb: float | None) -> None:
    rss = nan_if_none([b.get("rss_mb") for b in buckets])
    if all(math.isnan(v) for v in rss):
        axis.text(0.5, 0.5, "RSS not sampled", transform=axis.transAxes, ha="center", va="center", color=LIMIT)
    else:
        axis.plot(t, rss, color=SERVICE, label="server RSS")
    if limit_mb is not None:
        axis.axhline(limit_mb, color=BASELINE, linestyle="--", linewidth=1, label=f"limit {limit_mb:,.0f} MB")
        axis.set_ylim(bottom=0, top=max([limit_mb, *[v for v in rss if not math.isnan(v)]]) * 1.1)
    axis.set_ylabel("RSS, MB")
    axis.grid(axis="y", alpha=0.3)
    if axis.get_legend_handles_labels()[0]:
        axis.legend(loc="lower right", fontsize=8)


def draw_latency(axis: Any, t: list[float], buckets: list[dict[str, Any]], width: float) -> None:
    p50, p99 = (nan_if_none([b.get(key) for b in buckets]) for key in ("p50_ms", "p99_ms"))
    axis.plot(t, p99, color=SERVICE, linewidth=1.2, label="p99 of the 200s")
    axis.plot(t, p50, color=SERVICE, linewidth=0.8, linestyle=":", label="p50 of the 200s")
    if any(v > 0 for v in p99 if not math.isnan(v)):
        axis.set_yscale("log")
        axis.yaxis.set_major_formatter(PLAIN)
        axis.yaxis.set_minor_formatter(NullFormatter())
    axis.set_ylabel("latency of the 200s, ms")
    rates = axis.twinx()
    rates.plot(t, [b["shed"] / width for b in buckets], color=SHED, linewidth=1, label="503s/s")
    rates.plot(t, [b["failures"] / width for b in buckets], color=FAILED, linewidth=1, label="failures/s")
    rates.set_ylim(bottom=0, top=max(1.0, *(max(b["shed"], b["failures"]) / width for b in buckets)) * 1.1)
    rates.yaxis.set_major_formatter(PLAIN)
    rates.set_ylabel("503s and failures a second")
    lines = axis.get_legend_handles_labels()[0] + rates.get_legend_handles_labels()[0]
    axis.legend(lines, [line.get_label() for line in lines], loc="upper left", fontsize=8)


START, TOTAL = "#8d99ae", "#2b2d42"


def draw_waterfall(baseline: float, contributions: dict[str, float], labels: dict[str, str], probability: float,
                   outcome: str, title: str) -> bytes:
    """One row's contributions as a waterfall, from the ``baseline`` to the row's logit: a bar per
    feature (``labels`` names each: the feature and its value), the largest first, those that
    raise P(``outcome``) and those that lower it in two colours, each with its value; the final
    logit with the model's ``probability``, and the probability on the top axis. Deterministic,
    like the other charts."""
    if not contributions:
        raise ValueError("no contributions")
    order = sorted(contributions, key=lambda name: (-abs(contributions[name]), list(contributions).index(name)))
    totals = accumulated(baseline, [contributions[name] for name in order])  # the running total after each bar
    logit = baseline + math.fsum(contributions.values())
    rows = ["baseline (the average training row)", *(labels[name] for name in order), "logit of this row"]
    last = len(rows) - 1
    figure, axis = plt.subplots(figsize=(9, 0.32 * len(rows) + 1.6))
    axis.barh(0, baseline, 0.6, color=START)
    axis.annotate(f"{baseline:+.3f}", (baseline, 0), **beside(baseline))
    for i, name in enumerate(order, start=1):
        value = contributions[name]
        axis.barh(i, value, 0.6, left=totals[i - 1], color=BASELINE if value > 0 else SERVICE)
        axis.annotate(f"{value:+.3f}", (totals[i], i), **beside(value))
    for i, total in enumerate(totals):  # each bar's end, down to the next one
        axis.plot([total, total], [i + 0.3, i + 0.7], color=LIMIT, linewidth=0.6)
    axis.barh(last, logit, 0.6, color=TOTAL)
    low, high = min(0.0, *totals, logit), max(0.0, *totals, logit)
    result = f"logit {logit:.3f}: P({outcome}) = {probability:.3f}"
    if abs(logit) > (high - low) / 2:  # inside its bar, which is long enough
        axis.annotate(result, (logit / 2, last), ha="center", va="center", fontsize=9, color="white", fontweight="bold")
    else:
        axis.annotate(result, (logit, last), **beside(logit), fontweight="bold")
    axis.axvline(0, color=LIMIT, linestyle=":", linewidth=1)
    axis.set_yticks(range(len(rows)), rows)
    axis.invert_yaxis()
    margin = (high - low) * 0.18
    axis.set_xlim(low - margin, high + margin)
    axis.set_xlabel("logit of P(" + outcome + "), running total")
    axis.grid(axis="x", alpha=0.3)
    top = axis.secondary_xaxis("top", functions=(sigmoid, logit_of))
    top.set_xticks([p for p in (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99) if low - margin <= logit_of(p) <= high + margin])
    top.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    top.set_xlabel(f"P({outcome})", fontsize=9)
    axis.legend(handles=[Patch(color=BASELINE, label=f"raises P({outcome})"),
                         Patch(color=SERVICE, label=f"lowers P({outcome})")],
                loc="upper right", fontsize=8)
    axis.set_title(title, fontsize=10)
    return svg(figure)


def beside(value: float) -> dict[str, Any]:
    """Where a bar's label goes: past its end, on the side it grows to."""
    return {"xytext": (3 if value >= 0 else -3, 0), "textcoords": "offset points", "va": "center",
            "ha": "left" if value >= 0 else "right", "fontsize": 8}


def accumulated(start: float, steps: list[float]) -> list[float]:
    totals = [start]
    for step in steps:
        totals.append(totals[-1] + step)
    return totals


def sigmoid(x: Any) -> Any:
    return 1 / (1 + np.exp(-np.asarray(x, dtype=float)))


def logit_of(p: Any) -> Any:
    p = np.clip(np.asarray(p, dtype=float), 1e-12, 1 - 1e-12)
    return np.log(p / (1 - p))
