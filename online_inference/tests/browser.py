"""Headless Chromium (Debian's ``chromium``) that may reach only 127.0.0.1: every other host name
resolves to nothing and every other address goes to a proxy that does not exist, so a page that
needs a CDN renders without it, as on an air-gapped machine."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts"))
OFFLINE_FLAGS = [
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>;127.0.0.1",
]


def chromium() -> str:
    binary = shutil.which("chromium")
    assert binary, "Debian's chromium is needed (apt-get install chromium; .ci/run installs it)"
    return binary


def render(url: str, screenshot: str | None = None, budget_ms: int = 15000) -> str:
    """The page's DOM once its scripts have run (``budget_ms`` of virtual time); with
    ``screenshot``, also a PNG of it in ARTIFACTS."""
    with tempfile.TemporaryDirectory() as profile:
        common = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  f"--user-data-dir={profile}", "--no-first-run", f"--virtual-time-budget={budget_ms}", *OFFLINE_FLAGS]
        dom = subprocess.run([*common, "--dump-dom", url], capture_output=True, text=True, timeout=120)
        assert dom.returncode == 0, dom.stderr[-2000:]
        if screenshot:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            shot = subprocess.run([*common, "--window-size=1280,1600", f"--screenshot={ARTIFACTS / screenshot}", url],
                                  capture_output=True, text=True, timeout=120)
            assert shot.returncode == 0 and (ARTIFACTS / screenshot).stat().st_size > 0, shot.stderr[-2000:]
    return dom.stdout
