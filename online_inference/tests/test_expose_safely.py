"""Spec: the README's "Expose it safely" works as written. Its commands run verbatim in a fresh
folder: ``make api-key`` writes the keys file's line, ``openssl`` the certificate; the service runs
with the settings its ``docker run`` gives (a process here: tests/docker runs the image the same
way), and its ``curl`` answers the model card over HTTPS with the key, 401 without it; the client
with ``--cacert`` and ``--api-key`` predicts."""

from __future__ import annotations

import re
import shlex
import ssl
import subprocess
from pathlib import Path

import httpx

from online_inference.devtools.paths import README
from online_inference.tests.helpers import user_environment, wait_until

ROOT = README.parent


def section_block() -> list[str]:
    """The section's commands that set up and call the service, continuation lines joined."""
    section = README.read_text().split("## Expose it safely", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    (setup,) = [b for b in blocks if "docker run" in b]
    return [line for line in setup.replace("\\\n", " ").splitlines() if line.strip()]


def docker_settings(docker_run: str, secrets: Path) -> dict[str, str]:
    """The ``-e`` settings of the README's ``docker run``, its ``/secrets`` volume at ``secrets``."""
    words = shlex.split(docker_run)
    pairs = [words[i + 1] for i, word in enumerate(words) if word == "-e"]
    return {name: value.replace("/secrets", str(secrets)) for name, value in (pair.split("=", 1) for pair in pairs)}


def test_the_readme_runs_the_service_with_tls_and_a_key_and_calls_it(tmp_path: Path) -> None:
    setup, certificate, docker_run, key_line, curl = section_block()
    env = user_environment()
    made = subprocess.run(setup.replace("make api-key", f"make -C {ROOT} api-key"), shell=True, cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr[-2000:]
    (key,) = re.findall(r"^key:\s+(\S+)$", made.stderr, re.M)  # tee shows the output on the terminal
    assert key not in (tmp_path / "secrets" / "api-keys").read_text()  # the file holds the digest only
    subprocess.run(certificate, shell=True, cwd=tmp_path, check=True, capture_output=True, timeout=60)
    assert key_line.startswith("KEY=<")
    settings = {**docker_settings(docker_run, tmp_path / "secrets"), "PORT": "0", "GRPC_PORT": "0"}
    log = (tmp_path / "service.log").open("w")
    service = subprocess.Popen([str(ROOT / ".venv" / "bin" / "python"), "-m", "online_inference.app"], cwd=ROOT,
                               env={**env, **settings}, stdout=log, stderr=subprocess.STDOUT)
    try:
        port = listening_port(tmp_path / "service.log")
        url = f"https://127.0.0.1:{port}"
        ca_file = str(tmp_path / "secrets" / "tls.crt")
        ca = ssl.create_default_context(cafile=ca_file)
        wait_until(lambda: httpx.get(url + "/health", verify=ca).status_code == 200, 60)
        called = subprocess.run(curl.replace("127.0.0.1:8000", f"127.0.0.1:{port}"), shell=True, cwd=tmp_path,
                                env={**env, "KEY": key}, capture_output=True, text=True, timeout=60)
        assert '"name":"heart-disease-classifier"' in called.stdout.replace(" ", "")
        assert httpx.get(url + "/model", verify=ca).status_code == 401
        client = subprocess.run([str(ROOT / ".venv" / "bin" / "python"), "-m", "online_inference.client",
                                 str(ROOT / "online_inference" / "data" / "heart_cleveland_upload.csv"), "--url", url,
                                 "--cacert", ca_file, "--api-key", key], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert client.returncode == 0, client.stderr[-2000:]
        assert len(client.stdout.splitlines()) == 298 and key not in client.stderr
    finally:
        service.terminate()
        service.wait(30)
    assert key not in (tmp_path / "service.log").read_text()  # never logged


def listening_port(log: Path) -> int:
    """The HTTPS port the service chose (PORT=0), from its start-up log."""
    found: list[str] = []

    def logged() -> bool:
        found[:] = re.findall(r"Uvicorn running on https://[\d.]+:(\d+)", log.read_text())
        return bool(found)

    wait_until(logged, 60)
    return int(found[0])
