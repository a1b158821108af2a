"""Spec: a mixed valid/invalid load gives no socket error, only the expected statuses, and flat
memory (`make soak` runs 60 s at 64 connections; here a few seconds prove the harness)."""

from __future__ import annotations

import os
import shutil

import pytest

from online_inference.bench.soak import soak


@pytest.mark.slow
def test_short_soak_passes() -> None:
    if shutil.which("wrk") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("wrk is missing: .ci/run installs it")
        pytest.skip("wrk is missing (apt-get install wrk)")
    summary = soak(seconds=3, warmup=1, connections=64)
    assert summary["checks"] == {name: True for name in summary["checks"]}, summary
    assert summary["statuses"].keys() == {200, 400}
