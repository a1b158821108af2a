"""Markdown summary of ``results/bench.json`` for the README (nothing typed by hand)."""

from __future__ import annotations

from typing import Any


def mark(ok: bool) -> str:
    return "✅" if ok else "❌"


def render_summary(r: dict[str, Any]) -> str:
    s, t = r["scenarios"], r["targets"]
    single, c1, halting, batch = s["single_c32"], s["single_c1"], s["single_c1_halting"], s["batch1000_c32"]
    settings, rss, floor = r["settings"], r["peak_rss_mb"], r["floor"]
    rows = [
        "| Scenario | ONNX service | scikit-learn baseline | Ratio (median of rounds) |",
        "|---|---:|---:|---:|",
        f"| 1 row/request, 32 connections | {single['onnx']['rps']:,.0f} req/s ({single['requests_per_model_call']:.1f} requests per model call, "
        f"{single['model_call_us']:.0f} µs a call) "
        f"| {single['baseline']['rps']:,.0f} req/s | {single['ratio_median']:.1f}× |",
        f"| 1 row/request, 1 connection | {c1['onnx']['rps']:,.0f} req/s, p50 {c1['onnx']['p50_ms']:.2f} ms, p99 {c1['onnx']['p99_ms']:.2f} ms "
        f"| {c1['baseline']['rps']:,.0f} req/s, p50 {c1['baseline']['p50_ms']:.2f} ms, p99 {c1['baseline']['p99_ms']:.2f} ms | {c1['ratio_median']:.1f}× |",
        f"| the same, wrk's core free to halt (each response wakes it) | {halting['onnx']['rps']:,.0f} req/s, p50 {halting['onnx']['p50_ms']:.2f} ms, "
        f"p99 {halting['onnx']['p99_ms']:.2f} ms | {halting['baseline']['rps']:,.0f} req/s, p50 {halting['baseline']['p50_ms']:.2f} ms, "
        f"p99 {halting['baseline']['p99_ms']:.2f} ms | {halting['ratio_median']:.1f}× |",
        f"| 1000 rows/request, 32 connections | {batch['onnx']['rows_per_s']:,.0f} rows/s | {batch['baseline']['rows_per_s']:,.0f} rows/s | {batch['ratio_median']:.1f}× |",
        f"| cold start (process → /health 200, median of {settings['cold_starts']}, alternating; bytecode cached) "
        f"| {r['cold_start_s']['onnx']['median']:.2f} s | {r['cold_start_s']['baseline']['median']:.2f} s | |",
        f"| peak RSS (all the traffic above, and an invalid body) | {rss['onnx']:.0f} MB | {rss['baseline']:.0f} MB | |",
        f"| floor: a constant answer on the same server, 1 row, in the same rounds | {floor['single_c32']['rps']:,.0f} req/s "
        f"at 32 connections; p50 {floor['single_c1']['p50_ms']:.2f} ms, p99 {floor['single_c1']['p99_ms']:.2f} ms at 1 "
        f"(p99 {floor['single_c1_halting']['p99_ms']:.2f} ms with wrk's core free to halt) | | |",
        f"| the same floor on uvicorn's own protocol, without the edge | {r['floor_stock']['single_c32']['rps']:,.0f} req/s "
        f"at 32 connections | | |",
    ]
    errors = sum(sc[k]["errors"] for sc in s.values() for k in ("onnx", "baseline"))
    targets = [
        "| Target | Goal | Measured | |",
        "|---|---|---:|---|",
        f"| single-row req/s vs baseline | ≥ {t['single_rps_ratio']:g}× | {single['ratio_median']:.1f}× | {mark(single['ratio_median'] >= t['single_rps_ratio'])} |",
        f"| batch rows/s vs baseline | ≥ {t['batch_rows_ratio']:g}× | {batch['ratio_median']:.1f}× | {mark(batch['ratio_median'] >= t['batch_rows_ratio'])} |",
        f"| p99 at 1 connection | ≤ {t['p99_c1_ms']:g} ms | {c1['onnx']['p99_ms']:.2f} ms | {mark(c1['onnx']['p99_ms'] <= t['p99_c1_ms'])} |",
        f"| cold start | ≤ {t['cold_start_s']:g} s | {r['cold_start_s']['onnx']['median']:.2f} s | {mark(r['cold_start_s']['onnx']['median'] <= t['cold_start_s'])} |",
        f"| peak RSS | ≤ {t['peak_rss_mb']:g} MB | {rss['onnx']:.0f} MB | {mark(rss['onnx'] <= t['peak_rss_mb'])} |",
    ]
    quick = " **(quick run: not representative)**" if settings["quick"] else ""
    numpy = numpy_rows(r) if "onnx_noblas" in r else []
    paused = " (the other services paused while it is measured)" if settings.get("others_paused") else ""
    python = f" on {settings['python']}" if "python" in settings else ""
    return "\n".join([
        f"Measured by `make bench`{quick} on commit `{settings.get('commit', 'unknown')[:12]}` ({settings.get('machine', 'machine not recorded')}): "
        f"each service{python}, one process pinned to one core{paused}, wrk on the other, which is kept "
        f"from halting while it waits, except where said (the method: `online_inference/bench/README.md`); "
        f"{settings['rounds']} alternating A/B rounds of {settings['seconds']:g} s per scenario; "
        f"the baseline is FastAPI + scikit-learn + pandas with the same pipeline and contract "
        f"(`online_inference/bench/baseline_app.py`). Both gave the same predictions on {r['parity']['rows']} rows "
        f"(max |Δp| {r['parity']['max_abs_probability_delta']:.1g}); socket errors and non-2xx answers: {errors}.",
        "",
        *rows,
        "",
        *targets,
        *numpy,
    ])


def numpy_rows(r: dict[str, Any]) -> list[str]:
    """The service on numpy built without BLAS (the slim and distroless images') against the same
    service on PyPI's numpy, in the same rounds."""
    s, n, numpy = r["scenarios"], r["onnx_noblas"], r["numpy"]
    single, c1, batch = (n["scenarios"][name] for name in ("single_c32", "single_c1", "batch1000_c32"))
    return [
        "",
        f"numpy {numpy['onnx_noblas']['version']} built without BLAS (`{numpy['onnx_noblas']['blas']}`: the slim and "
        f"distroless images' build) against PyPI's (`{numpy['onnx']['blas']}`), the same service in the same rounds; "
        "it answers the same bytes:",
        "",
        "| Scenario | PyPI's numpy | numpy without BLAS | Ratio (median of rounds) |",
        "|---|---:|---:|---:|",
        f"| 1 row/request, 32 connections | {s['single_c32']['onnx']['rps']:,.0f} req/s | {single['rps']:,.0f} req/s | {single['rps_ratio_median']:.2f}× |",
        f"| 1 row/request, 1 connection, p99 | {s['single_c1']['onnx']['p99_ms']:.2f} ms | {c1['p99_ms']:.2f} ms | {c1['p99_ratio_median']:.2f}× |",
        f"| 1000 rows/request, 32 connections | {s['batch1000_c32']['onnx']['rows_per_s']:,.0f} rows/s | {batch['rows_per_s']:,.0f} rows/s "
        f"| {batch['rps_ratio_median']:.2f}× |",
        f"| cold start | {r['cold_start_s']['onnx']['median']:.2f} s | {n['cold_start_s']['median']:.2f} s | |",
        f"| peak RSS | {r['peak_rss_mb']['onnx']:.0f} MB | {n['peak_rss_mb']:.0f} MB | |",
    ]
