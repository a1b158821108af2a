"""Spec: a load run's time series is drawn as a two-panel SVG (RSS with its limit; latency, 503s
and failures a second), the same bytes for the same series, with no date in it."""

from __future__ import annotations

import math

import pytest

from online_inference.devtools.charts import draw_timeline


def series(buckets: int = 50, rss: bool = True) -> list[dict[str, object]]:
    """A run that overloads its server: latency grows, then 503s and a few failures."""
    return [{"t_s": round(b * 0.1, 3), "ok": 100, "shed": max(0, b - 25) * 10, "failures": 1 if b % 10 == 9 else 0,
             "p50_ms": 1.0 + b, "p99_ms": None if b == 3 else 2.0 + math.exp(b / 10),
             "rss_mb": (90.0 + b if rss else None) if b != 7 else None} for b in range(buckets)]


def test_the_timeline_is_drawn_deterministically_with_its_limit() -> None:
    drawn = draw_timeline(series(), "2x capacity", rss_limit_mb=150)
    assert drawn == draw_timeline(series(), "2x capacity", rss_limit_mb=150)
    text = drawn.decode()
    assert text.startswith("<?xml") and "<dc:date>" not in text
    for label in ("limit 150 MB", "server RSS", "p99 of the 200s", "503s/s", "failures/s", "2x capacity"):
        assert label in text
    assert drawn != draw_timeline(series(), "2x capacity")  # without the limit's line


def test_a_run_without_rss_or_answers_is_drawn_too() -> None:
    quiet = [{**b, "p50_ms": None, "p99_ms": None, "ok": 0} for b in series(rss=False)]
    text = draw_timeline({"series": quiet, "bucket_s": 0.1}, "nothing answered").decode()
    assert "RSS not sampled" in text
    with pytest.raises(ValueError):
        draw_timeline([], "empty")
