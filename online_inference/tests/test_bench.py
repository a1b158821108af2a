"""Spec: the benchmark runs (briefly here; `make bench` runs it for real): both services answer,
give the same predictions, and the results and the README summary are written; the service is
measured on a second numpy too (`make bench`: the images' build without BLAS; here PyPI's wheel
itself, which proves the mechanism); wrk's core is kept from halting by a process of the lowest
priority, only while wrk runs. The A/B of two commits runs them in turn, or both at once."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from online_inference.bench.run_bench import core_kept_awake
from online_inference.bench.run_bench import main as bench_main
from online_inference.bench.run_bench import others_paused
from online_inference.bench.server import Service
from online_inference.devtools.procfs import children
from online_inference.tests.helpers import wait_until

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quick_bench_runs_and_writes_results(tmp_path: Path) -> None:
    missing = [tool for tool in ("wrk", "taskset") if shutil.which(tool) is None]
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"missing {missing}: .ci/run installs wrk")
        pytest.skip(f"missing {missing} (apt-get install wrk)")
    wheels = tmp_path / "wheels"
    locked = next(line.split("==")[1].split()[0] for line in (ROOT / "requirements" / "runtime.txt").read_text().splitlines()
                  if line.startswith("numpy=="))
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                    f"numpy=={locked}", "-d", str(wheels)], check=True, timeout=300)
    assert bench_main(["--quick", "--output", str(tmp_path), "--numpy-wheel", str(wheels)]) == 0
    results = json.loads((tmp_path / "bench.json").read_text())
    assert results["numpy"]["onnx_noblas"]["version"] == locked and results["onnx_noblas"]["peak_rss_mb"] > 0
    assert results["onnx_noblas"]["scenarios"]["single_c32"]["rps"] > 0
    assert results["parity"]["same_labels"] == results["parity"]["rows"] == 297
    for scenario in results["scenarios"].values():
        assert scenario["onnx"]["rps"] > 0 and scenario["baseline"]["rps"] > 0
        assert scenario["onnx"]["errors"] == 0
    by_call = {name: scenario["requests_per_model_call"] for name, scenario in results["scenarios"].items()}
    assert by_call["single_c32"] > 1 and by_call["single_c1"] == by_call["single_c1_halting"] == by_call["batch1000_c32"] == 1  # small concurrent requests share calls
    assert results["scenarios"]["single_c32"]["model_call_us"] > 0
    assert results["peak_rss_mb"]["onnx"] > 0
    assert results["settings"]["commit"].removesuffix("+dirty") == subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    assert results["floor"]["single_c32"]["rps"] > results["scenarios"]["single_c32"]["onnx"]["rps"]
    assert results["floor_stock"]["single_c32"]["rps"] > 0
    summary = (tmp_path / "summary.md").read_text()
    assert "| 1 row/request, 32 connections |" in summary and "numpy without BLAS" in summary
    assert results["settings"]["python"] == f"Python {platform.python_version()} ({os.path.realpath(sys.executable)})"
    assert f"each service on {results['settings']['python']}, one process" in summary  # the interpreter is said


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="the bench needs 2 cores")
def test_wrk_core_is_kept_awake_at_the_lowest_priority_only_while_wrk_runs() -> None:
    before = set(children(os.getpid()))
    with core_kept_awake():
        (spinner,) = set(children(os.getpid())) - before
        wait_until(lambda: os.sched_getscheduler(spinner) == os.SCHED_IDLE and os.sched_getaffinity(spinner) == {1}, timeout=10)
    assert spinner not in children(os.getpid())
    with core_kept_awake(awake=False):
        assert set(children(os.getpid())) == before


def state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_services_not_measured_are_paused_only_while_one_is_measured() -> None:
    processes = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) for _ in range(3)]
    services = [Service(f"s{i}", "", process, 0.0) for i, process in enumerate(processes)]
    try:
        with others_paused(services[0], services):
            wait_until(lambda: [state(p.pid) for p in processes] == ["S", "T", "T"], timeout=10)
        wait_until(lambda: all(state(p.pid) == "S" for p in processes), timeout=10)
    finally:
        for process in processes:
            process.kill()
            process.wait()


@pytest.mark.parametrize("mode", [[], ["--paired"]], ids=["alternating", "paired"])
def test_the_ab_of_two_commits_gives_each_ones_rate_and_the_ratio(mode: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from online_inference.bench.ab import main as ab_main

    if shutil.which("wrk") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("missing wrk: .ci/run installs it")
        pytest.skip("missing wrk (apt-get install wrk)")
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, cwd=ROOT).stdout.strip()
    assert ab_main(["HEAD", head, "--rounds", "1", "--seconds", "1", *mode]) == 0  # one commit by two names (a clone may be shallow)
    result = json.loads(capsys.readouterr().out)
    assert result["paired"] == bool(mode) and all(len(runs) == 1 and runs[0] > 0 for runs in result["runs"].values())
    assert result["ratio"] > 0


def test_the_costs_quoted_in_the_architecture_document_are_measured(tmp_path: Path) -> None:
    from online_inference.bench.costs import main as costs_main

    cores = os.sched_getaffinity(0)
    assert costs_main(["--calls", "200", "--repeats", "1", "--output", str(tmp_path)]) == 0
    assert os.sched_getaffinity(0) == cores  # the measurement's pinning does not outlive it
    results = json.loads((tmp_path / "costs.json").read_text())
    assert all(value > 0 for value in results["model_call_us"].values())
    assert set(results["request_us"]) == {"predict_1_row_shared_call", "predict_1_row_own_call"}
    assert set(results["parse_us"]) == {"1", "24", "1000"}
    assert "| model call, 1 row, `InferenceSession.run` |" in (tmp_path / "costs.md").read_text()
