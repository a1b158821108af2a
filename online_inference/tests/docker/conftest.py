"""Container fixtures. Docker tests need an engine: in CI (REQUIRE_DOCKER=1) a missing engine
fails; elsewhere the tests are skipped with the reason. Images are (re)built by ``make images``
(BuildKit's cache makes an unchanged build quick), with OFFLINE=1 stand-in bases when asked."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from online_inference.docker.dockercli import DOCKER, IMAGE, VARIANTS, engine_available, make
from online_inference.docker.dockercli import free_port
from online_inference.tests.helpers import wait_until

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(item.fspath).resolve().parents:
            item.add_marker(pytest.mark.docker)


@pytest.fixture(scope="session")
def docker_engine() -> str:
    problem = engine_available()
    if problem:
        if os.environ.get("REQUIRE_DOCKER") == "1" or os.environ.get("CI") == "true":
            pytest.fail(f"a Docker engine is required here: {problem}")
        pytest.skip(f"no Docker engine: {problem}")
    return DOCKER


@pytest.fixture(scope="session")
def images(docker_engine: str) -> dict[str, str]:
    variables = {"DOCKER": docker_engine, "IMAGE": IMAGE}
    for name in ("OFFLINE", "PIP_CERT"):
        if os.environ.get(name):
            variables[name] = os.environ[name]
    make("images", **variables)
    return {v: f"{IMAGE}:{v}" for v in VARIANTS}


@pytest.fixture(scope="session")
def registry(docker_engine: str) -> Iterator[str]:
    """Debian's docker-registry on a free 127.0.0.1 port, filesystem storage in a temp dir."""
    binary = shutil.which("docker-registry")
    if binary is None:
        pytest.fail("docker-registry is not installed (apt-get install docker-registry)")
    port = free_port()
    storage = Path(tempfile.mkdtemp(prefix="registry-"))
    config = storage / "config.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
        f"    rootdirectory: {storage / 'data'}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    process = subprocess.Popen([binary, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        import httpx

        wait_until(lambda: httpx.get(f"http://127.0.0.1:{port}/v2/").status_code == 200, 20)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)
        shutil.rmtree(storage, ignore_errors=True)
