"""Where the generated documents and the recorded results they are rendered from live."""

from __future__ import annotations

from pathlib import Path

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
