"""Spec: a fresh clone, with nothing beside it (no ../shared), does what the README's first
commands promise: `make serve` sets itself up and serves the bundled model, `make client` sends
the table the repository ships to it and reports the model's accuracy, and the README's
`pip install .` command, run verbatim (only the venv's directory differs), serves the model from
the installed package."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from online_inference.tests.helpers import serving, user_environment

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("fresh") / "heart-online-inference"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(where)], check=True, timeout=120)
    assert not (where.parent / "shared").exists()
    return where


@pytest.fixture(scope="module")
def served(clone: Path) -> Iterator[str]:
    with serving("make serve", clone) as url:
        yield url


def test_make_serve_serves_the_bundled_model(served: str) -> None:
    assert httpx.get(served + "/health").json()["model"]["name"] == "heart-disease-classifier"


def test_the_readmes_pip_install_command_serves_the_model(clone: Path, tmp_path: Path) -> None:
    (command,) = [line for line in (clone / "README.md").read_text().splitlines() if line.startswith("python3 -m venv ")]
    with serving(command.replace("/tmp/heart", str(tmp_path / "venv")), clone) as url:
        body = {"instances": [{"age": 63, "sex": 1, "cp": 0, "trestbps": 145, "chol": 233, "fbs": 1, "restecg": 2,
                               "thalach": 150, "exang": 0, "oldpeak": 2.3, "slope": 2, "ca": 0, "thal": 1}]}
        response = httpx.post(url + "/predict", json=body)
    assert response.status_code == 200, response.text
    assert (tmp_path / "venv" / "bin" / "heart-online-inference").exists()


def test_make_client_sends_the_shipped_table(clone: Path, served: str) -> None:
    env = user_environment()
    result = subprocess.run(["make", "-s", "client", f"URL={served}"], cwd=clone, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "297 rows sent" in result.stderr and "accuracy" in result.stderr
