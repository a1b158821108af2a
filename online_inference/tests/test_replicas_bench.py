"""Spec: ``make replicas``'s script runs (one short round) on the shipped haproxy configuration:
every configuration (one replica alone, 1, 2 and 3 behind haproxy) is measured without an error,
the results name the haproxy that ran, and the README's table renders from them."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from online_inference.bench.replicas import CONFIGURATIONS, main, render


def test_quick_replicas_bench_runs_and_writes_results(tmp_path: Path) -> None:
    missing = [tool for tool in ("wrk", "haproxy") if shutil.which(tool, path=f"{os.environ.get('PATH', '')}:/usr/sbin") is None]
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"missing {missing}: .ci/run installs them")
        pytest.skip(f"missing {missing} (apt-get install wrk haproxy)")
    output = tmp_path / "replicas.json"
    assert main(["--quick", "--output", str(output)]) == 0
    results = json.loads(output.read_text())
    assert results["settings"]["haproxy"].startswith("HAProxy version 2.6")
    assert set(results["configurations"]) == set(CONFIGURATIONS)
    for name, configuration in results["configurations"].items():
        assert configuration["rps"] > 0 and configuration["errors"] == 0, name
        assert configuration["replicas"] == CONFIGURATIONS[name]
    assert len([line for line in render(results).splitlines() if line.startswith("| ") and line[2].isdigit()]) == len(CONFIGURATIONS)
