"""Spec: the package installs and runs as a user installs it. Its wheel, installed in a fresh
venv with pip resolving its dependencies from the package's own metadata (at the locked versions) gives a service, started by its console script, that predicts with the model the wheel
carries, and a client script; the package's dependencies are exactly requirements/runtime.in."""

from __future__ import annotations

import os
import re
import subprocess
import time
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from packaging.requirements import Requirement

from online_inference.tests.helpers import bundled_card, valid_row, wait_listening

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def requirements(lines: list[str]) -> set[str]:
    """Normalised requirement strings (name lower-cased, comments and blank lines dropped)."""
    found = set()
    for line in lines:
        text = line.split("#", 1)[0].strip()
        if text:
            requirement = Requirement(text)
            found.add(f"{requirement.name.lower()}{requirement.specifier}{'; ' + str(requirement.marker) if requirement.marker else ''}")
    return found


def locked_versions(path: Path) -> Path:
    """The runtime lock's pins without their hashes: as constraints, they fix the versions while
    pip takes the list of dependencies from the wheel (hashes would make pip demand one for the
    wheel itself)."""
    lines = (ROOT / "requirements" / "runtime.txt").read_text().splitlines()
    path.write_text("\n".join(line.split()[0] for line in lines if re.match(r"^[A-Za-z0-9_.-]+==", line)) + "\n")
    return path


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """(the fresh venv, the wheel it was installed from)."""
    where = tmp_path_factory.mktemp("package")
    venv.create(where / "venv", with_pip=True)
    python = where / "venv" / "bin" / "python"
    pip = [str(python), "-m", "pip", "--disable-pip-version-check", "--quiet"]
    env = {**os.environ, "PIP_CERT": os.environ.get("PIP_CERT", "/etc/ssl/certs/ca-certificates.crt")}
    env.pop("PYTHONPATH", None)  # the installed package, not this checkout
    subprocess.run([*pip, "wheel", "--no-deps", "--wheel-dir", str(where / "dist"), str(ROOT)], check=True, env=env,
                   capture_output=True, timeout=600)
    (wheel,) = (where / "dist").glob("*.whl")
    subprocess.run([*pip, "install", "--constraint", str(locked_versions(where / "constraints.txt")), str(wheel)],
                   check=True, env=env, capture_output=True, timeout=900)
    yield where / "venv", wheel


def test_the_wheel_carries_the_model_and_the_runtime_dependencies(installed: tuple[Path, Path]) -> None:
    _, wheel = installed
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        declared = [line.removeprefix("Requires-Dist: ") for line in archive.read(metadata).decode().splitlines()
                    if line.startswith("Requires-Dist: ") and "extra ==" not in line]
    assert "online_inference/model/heart.onnx" in names
    assert not any(name.startswith(("online_inference/tests/", "online_inference/bench/", "online_inference/docker/", "online_inference/devtools/")) for name in names)
    assert requirements(declared) == requirements((ROOT / "requirements" / "runtime.in").read_text().splitlines())


def test_the_installed_service_starts_from_its_script_and_predicts(installed: tuple[Path, Path], tmp_path: Path) -> None:
    venv_dir, _ = installed
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PORT="0", GRPC_PORT="0", LOG_LEVEL="warning", HOME=str(tmp_path))
    log = (tmp_path / "service.log").open("wb")
    service = subprocess.Popen([str(venv_dir / "bin" / "heart-online-inference")], cwd=tmp_path, env=env,
                               stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{wait_listening(service, timeout=60)}"
        card = bundled_card()
        body = {"features": card.feature_names, "data": [valid_row(card)]}
        deadline = time.monotonic() + 60
        while httpx.get(url + "/health").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.1)  # polling the model's loading, until the deadline
        response = httpx.post(url + "/predict", json=body)
        assert response.status_code == 200, response.text
        assert response.json()["model"]["name"] == card.name
        client = subprocess.run([str(venv_dir / "bin" / "heart-online-inference-client"),
                                 str(ROOT / "online_inference" / "data" / "heart_cleveland_upload.csv"), "--url", url,
                                 "--output", str(tmp_path / "out.json")], cwd=tmp_path, env=env, capture_output=True,
                                text=True, timeout=120)
        assert client.returncode == 0, client.stderr
        assert "297 rows sent" in client.stderr
    finally:
        service.terminate()
        assert service.wait(30) == 0
        log.close()
    assert "Traceback" not in (tmp_path / "service.log").read_text()
