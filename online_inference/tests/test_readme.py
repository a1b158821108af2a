"""Spec: the README's generated tables are current, and its curl examples work verbatim (against a
live server; only the port differs) and answer exactly what the README shows; its client command
and `make client` run from the repo root with what the repository ships."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from online_inference.devtools.paths import README
from online_inference.devtools.docs import main as docs_main
from online_inference.tests.helpers import live_server

ROOT = README.parent
BLOCK = re.compile(r"```(?P<lang>bash|json)\n(?P<body>.*?)```", re.S)


def curl_examples() -> list[tuple[str, str | None]]:
    """Each single-line curl example, with the JSON block that follows it (if any)."""
    blocks = [(m["lang"], m["body"].strip()) for m in BLOCK.finditer(README.read_text())]
    examples = []
    for i, (lang, body) in enumerate(blocks):
        if lang == "bash" and body.startswith("curl ") and "\n" not in body:
            following = blocks[i + 1] if i + 1 < len(blocks) else None
            examples.append((body, following[1] if following and following[0] == "json" else None))
    return examples


@pytest.fixture(scope="module")
def server_port() -> Iterator[int]:
    with live_server() as url:
        yield int(url.rsplit(":", 1)[1])


def test_generated_sections_are_current() -> None:
    assert docs_main(["--check"]) == 0, "run `make docs`"


def test_the_charts_are_shown() -> None:
    from online_inference.devtools.charts import BENCH_CHART, SIZE_CHART

    text = README.read_text()
    for chart in (BENCH_CHART, SIZE_CHART):
        assert f"]({chart.relative_to(ROOT)})" in text
    assert "](docker/results/size.svg)" in (ROOT / "online_inference" / "SIZE_REPORT.md").read_text()


def test_readme_has_curl_examples() -> None:
    assert len(curl_examples()) >= 5


@pytest.mark.parametrize(("command", "shown"), curl_examples(), ids=lambda v: (v or "")[:60])
def test_curl_example_works_verbatim(server_port: int, command: str, shown: str | None) -> None:
    assert shutil.which("curl"), "curl is needed to run the README's examples"
    local = command.replace("127.0.0.1:8000", f"127.0.0.1:{server_port}")
    result = subprocess.run(local, shell=True, capture_output=True, text=True, check=True, timeout=30)
    answer = json.loads(result.stdout)
    assert "error" not in answer or "problems" in answer, answer
    if shown is not None:
        assert answer == json.loads(shown), "the README shows a different answer"


def client_command() -> str:
    (command,) = [body for lang, body in (m.groups() for m in BLOCK.finditer(README.read_text()))
                  if lang == "bash" and body.startswith(".venv/bin/python -m online_inference.client")]
    return command.strip()


def test_the_client_command_works_verbatim_from_the_repo_root(server_port: int, tmp_path: Path) -> None:
    """Only the port, and where the predictions go, differ."""
    local = client_command().replace("127.0.0.1:8000", f"127.0.0.1:{server_port}").replace(
        "--output predictions.csv", f"--output {tmp_path / 'predictions.csv'}")
    result = subprocess.run(local, shell=True, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert len((tmp_path / "predictions.csv").read_text().splitlines()) == 298
    assert "297 rows sent" in result.stderr and "predicted 1" in result.stderr


def test_make_client_sends_the_shipped_table(server_port: int) -> None:
    result = subprocess.run(["make", "-s", "client", f"URL=http://127.0.0.1:{server_port}"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "297 rows sent" in result.stderr and "accuracy" in result.stderr


def test_readme_names_the_two_commands() -> None:
    text = README.read_text()
    assert "make serve" in text and "make test" in text
    assert Path(README).parent.joinpath(".ci", "run").read_text().rstrip().endswith("make test")


GRPC_EXAMPLE = re.compile(r"```python\n(?P<code>import numpy as np\nimport tritonclient\.grpc.*?)```\n+```text\n(?P<shown>.*?)```", re.S)


def test_the_grpc_example_works_verbatim_and_prints_what_the_readme_shows() -> None:
    """Against the service as a process: only the port differs."""
    from online_inference.bench.server import serve

    (match,) = GRPC_EXAMPLE.finditer(README.read_text())
    with serve("onnx") as service:
        code = match["code"].replace("127.0.0.1:8081", f"127.0.0.1:{service.grpc_port}")
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout == match["shown"]
