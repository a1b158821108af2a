"""Spec: the Dockerfiles pass hadolint and the publishing workflow passes actionlint; every
suppression carries a reason on the line above it."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted((ROOT / "online_inference").glob("Dockerfile*"))
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def tool(name: str) -> str:
    path = shutil.which(name) or str(Path(sys.executable).parent / name)
    if not Path(path).exists():
        pytest.fail(f"{name} is not installed (it is in requirements/dev.txt)")
    return path


def test_dockerfiles_pass_hadolint() -> None:
    assert len(DOCKERFILES) == 3
    result = subprocess.run([tool("hadolint"), "--no-color", *map(str, DOCKERFILES)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_hadolint_suppression_has_a_reason() -> None:
    for dockerfile in DOCKERFILES:
        lines = dockerfile.read_text().splitlines()
        for i, line in enumerate(lines):
            if re.match(r"#\s*hadolint ignore=", line):
                assert i > 0 and lines[i - 1].startswith("#") and len(lines[i - 1]) > 20, f"{dockerfile.name}:{i + 1}"


def test_workflows_pass_actionlint() -> None:
    assert WORKFLOWS
    result = subprocess.run([tool("actionlint"), "-no-color", *map(str, WORKFLOWS)], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
