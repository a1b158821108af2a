"""What an open-loop run saw (:mod:`openloop`): per arrival its times and outcome
(:class:`Records`), and the summary, the time series and the JSON form of a run (:class:`Result`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from online_inference.bench.wire import FAILURES

BUCKET_S = 0.1  # the time series' resolution, and the RSS sampling period


@dataclass
class Records:
    """Per arrival (index = arrival order): times in seconds since the start of the run."""

    scheduled: list[float] = field(default_factory=list)
    sent: list[float] = field(default_factory=list)  # nan: never sent
    done: list[float] = field(default_factory=list)  # nan: not finished
    outcome: list[str] = field(default_factory=list)  # "": not finished
    overflow: bytearray = field(default_factory=bytearray)  # 1: found no free connection
    request: list[int] = field(default_factory=list)  # which request of the mix


def percentiles_ms(latencies_s: list[float]) -> dict[str, float | None]:
    if not latencies_s:
        return {"p50_ms": None, "p90_ms": None, "p99_ms": None, "max_ms": None}
    ordered = sorted(latencies_s)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)] * 1000, 3)

    return {"p50_ms": at(0.50), "p90_ms": at(0.90), "p99_ms": at(0.99), "max_ms": round(ordered[-1] * 1000, 3)}


def rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


@dataclass
class Result:
    """What one run saw. :meth:`to_dict` is its JSON form (the records only if asked)."""

    url: str
    rate_per_s: float
    duration_s: float
    timeout_s: float
    max_connections: int
    records: Records
    rss_samples: list[tuple[float, float]]
    peak_connections: int
    elapsed_s: float
    lost_where: dict[str, int] = field(default_factory=dict)

    @property
    def offered(self) -> int:
        return len(self.records.scheduled)

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for outcome in self.records.outcome:
            counts[outcome] = counts.get(outcome, 0) + 1
        return dict(sorted(counts.items()))

    def latencies(self, predicate: Any) -> list[float]:
        r = self.records
        return [d - s for d, s, o in zip(r.done, r.scheduled, r.outcome) if predicate(o)]

    def summary(self) -> dict[str, Any]:
        r, counts = self.records, self.counts()
        shed = counts.get("503_retry_after", 0) + counts.get("503_no_retry_after", 0)
        served_in_window = sum(1 for d, o in zip(r.done, r.outcome) if o == "200" and d <= self.duration_s)
        lags = [t - s for t, s, o in zip(r.sent, r.scheduled, r.overflow) if not o and not math.isnan(t)]
        return {
            "url": self.url, "duration_s": self.duration_s, "timeout_s": self.timeout_s, "max_connections": self.max_connections,
            "offered": self.offered, "offered_rate_per_s": self.offered / self.duration_s,
            "served_rate_per_s": served_in_window / self.duration_s,
            "ok": counts.get("200", 0), "shed": shed, "shed_fraction": shed / max(self.offered, 1),
            "outcomes": counts,
            "failures": {kind: counts.get(kind, 0) for kind in FAILURES},
            "other_statuses": {k: v for k, v in counts.items() if k.isdigit() and k != "200"},
            "generator_overflow": sum(r.overflow), "unsent": sum(1 for t in r.sent if math.isnan(t)),
            "peak_connections": self.peak_connections, "lost_where": self.lost_where,
            "latency_200": percentiles_ms(self.latencies(lambda o: o == "200")),
            "latency_503": percentiles_ms(self.latencies(lambda o: o.startswith("503"))),
            "dispatch_lag_ms": {k.replace("_ms", ""): v for k, v in percentiles_ms(lags).items()},
            "peak_rss_mb": max((mb for _, mb in self.rss_samples), default=None),
            "elapsed_s": round(self.elapsed_s, 3),
        }

    def series(self) -> list[dict[str, Any]]:
        """Per :data:`BUCKET_S` of completion time: 200s, 503s, failures (anything else), p50/p99
        of that bucket's 200s, and the largest RSS sampled in it (None if none)."""
        r = self.records
        buckets = int(max([self.duration_s, *[d for d in r.done if not math.isnan(d)]]) / BUCKET_S) + 1
        ok, shed, failed = [0] * buckets, [0] * buckets, [0] * buckets
        latencies: list[list[float]] = [[] for _ in range(buckets)]
        for scheduled, done, outcome in zip(r.scheduled, r.done, r.outcome):
            if math.isnan(done):
                continue
            b = int(done / BUCKET_S)
            if outcome == "200":
                ok[b] += 1
                latencies[b].append(done - scheduled)
            elif outcome.startswith("503"):
                shed[b] += 1
            else:
                failed[b] += 1
        rss: list[float | None] = [None] * buckets
        for t, mb in self.rss_samples:
            b = min(int(t / BUCKET_S), buckets - 1)
            rss[b] = max(mb, rss[b] or 0.0)
        for b in range(1, min(buckets, int(self.rss_samples[-1][0] / BUCKET_S) + 1) if self.rss_samples else 0):
            rss[b] = rss[b - 1] if rss[b] is None else rss[b]  # a sample that landed in the next bucket: the last one holds
        series = []
        for b in range(buckets):
            levels = percentiles_ms(latencies[b])
            series.append({"t_s": round(b * BUCKET_S, 3), "ok": ok[b], "shed": shed[b], "failures": failed[b],
                           "p50_ms": levels["p50_ms"], "p99_ms": levels["p99_ms"],
                           "rss_mb": rounded(rss[b])})
        return series

    def to_dict(self, records: bool = False) -> dict[str, Any]:
        result = {**self.summary(), "bucket_s": BUCKET_S, "series": self.series()}
        if records:
            r = self.records
            result["records"] = {"scheduled_s": r.scheduled, "done_s": r.done, "outcome": r.outcome,
                                 "overflow": list(r.overflow), "request": r.request}
        return result
