"""What a measurement was taken on: the commit (``+dirty`` with uncommitted changes to tracked
files) and the machine. Every results file records it (the benchmark, its costs, the size study)."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def provenance() -> dict[str, str]:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True, cwd=ROOT).stdout.strip()

    commit = git("rev-parse", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit + ("+dirty" if dirty else ""), "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}"}
