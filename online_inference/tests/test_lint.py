"""Spec: the Dockerfiles pass hadolint and the publishing workflow passes actionlint; every
suppression carries a reason on the line above it; the slim and distroless Dockerfiles build numpy
with the same stages, word for word (BuildKit then compiles it once for both, on one base), and
build_numpy.sh passes shellcheck. The tests hide no failure: an ``except`` that
passes or continues, and a ``time.sleep``, say on their line why (a sleep paces a scenario or polls
with a deadline, it never waits for server state), and no assert is on a literal."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "online_inference" / "tests"
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


def numpy_stages(dockerfile: Path) -> tuple[list[str], str]:
    """The numpy ARG lines, and the numpy stages' text with the base of their FROM lines left out."""
    text = dockerfile.read_text()
    arguments = [line for line in text.splitlines() if line.startswith("ARG NUMPY")]
    stages = text[text.index("# numpy-source:"):text.index("# builder:")]
    return arguments, re.sub(r"^FROM \$\{\w+\} AS", "FROM <base> AS", stages, flags=re.M)


def test_slim_and_distroless_build_numpy_alike() -> None:
    slim, distroless = (numpy_stages(ROOT / "online_inference" / f"Dockerfile.{name}") for name in ("slim", "distroless"))
    assert slim == distroless and "ARG NUMPY=source" in slim[0] and "FROM <base> AS numpy-source" in slim[1]


def test_build_numpy_passes_shellcheck() -> None:
    script = ROOT / "online_inference" / "docker" / "build_numpy.sh"
    result = subprocess.run([tool("shellcheck"), str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflows_pass_actionlint() -> None:
    assert WORKFLOWS
    result = subprocess.run([tool("actionlint"), "-no-color", *map(str, WORKFLOWS)], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def problems_in(source: str) -> list[str]:
    """What hides a failure in a test module's ``source``, by line."""
    lines, problems = source.splitlines(), []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ExceptHandler) and all(isinstance(b, (ast.Pass, ast.Continue)) for b in node.body):
            if not any("#" in lines[n - 1] for n in (node.lineno, node.body[0].lineno)):
                problems.append(f"{node.lineno}: an except that passes or continues, with no reason on its line")
        elif isinstance(node, ast.Assert) and isinstance(node.test, ast.Constant):
            problems.append(f"{node.lineno}: an assert on a literal")
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "sleep"
              and getattr(node.func.value, "id", None) == "time" and "#" not in lines[node.lineno - 1]):
            problems.append(f"{node.lineno}: a time.sleep with no reason on its line")
    return sorted(problems, key=lambda problem: int(problem.split(":")[0]))


def test_the_tests_hide_no_failure() -> None:
    problems = [f"{path.relative_to(ROOT)}:{problem}" for path in sorted(TESTS.rglob("*.py")) for problem in problems_in(path.read_text())]
    assert problems == []


def test_the_check_finds_each_way_of_hiding_a_failure() -> None:
    source = "import time\ntry:\n    x()\nexcept OSError:\n    pass\nassert True\ntime.sleep(1)\ntime.sleep(1)  # pacing\n"
    assert [p.split(": ", 1)[0] for p in problems_in(source)] == ["4", "6", "7"]
