"""Spec: the images run with TLS and API keys as the README's "Expose it safely" runs them: the
certificate, its key and the keys file on a read-only volume, the container as the files' owner;
the HEALTHCHECK turns healthy over TLS; the client predicts over HTTPS with the key; without it,
401; plain HTTP gets no answer."""

from __future__ import annotations

import hashlib
import os
import ssl
import time
from pathlib import Path

import httpx
import pytest

from online_inference.client.cli import main as client_main
from online_inference.docker.dockercli import HARDENED, VARIANTS, docker, free_port, running
from online_inference.tests.certs import Pki
from online_inference.devtools.api_key import new_key


def healthy(name: str, timeout: float) -> str:
    """The container's HEALTHCHECK status once it is no longer ``starting``."""
    deadline = time.monotonic() + timeout
    status = "starting"
    while status == "starting" and time.monotonic() < deadline:
        status = docker("inspect", "-f", "{{.State.Health.Status}}", name).stdout.strip()
        time.sleep(0.5)  # the HEALTHCHECK runs every 10 s: polling its status until the deadline
    return status


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_image_serves_over_tls_with_api_keys(images: dict[str, str], variant: str, tmp_path: Path, kaggle_csv: Path) -> None:
    (tmp_path / "pki").mkdir()
    pki = Pki.make(tmp_path / "pki")
    folder = tmp_path / "secrets"
    folder.mkdir()
    for name, source in (("tls.crt", pki.server.cert), ("tls.key", pki.server.key)):
        (folder / name).write_bytes(source.read_bytes())
        os.chmod(folder / name, 0o600)
    key = new_key()
    (folder / "api-keys").write_text(f"triage sha256:{hashlib.sha256(key.encode()).hexdigest()} inference,metadata\n")
    port = free_port()
    settings = {"TLS_CERT_FILE": "/secrets/tls.crt", "TLS_KEY_FILE": "/secrets/tls.key", "API_KEYS_FILE": "/secrets/api-keys"}
    with running(images[variant], *HARDENED, "--user", f"{os.getuid()}:{os.getgid()}", "-v", f"{folder}:/secrets:ro",
                 env=settings, wait=False, port=port) as container:
        url = f"https://127.0.0.1:{port}"
        assert healthy(container.name, 90) == "healthy", container.logs()[-3000:]
        ca = ssl.create_default_context(cafile=str(pki.ca.cert))
        assert httpx.get(url + "/model", verify=ca).status_code == 401
        output = tmp_path / "predictions.csv"
        arguments = [str(kaggle_csv), "--url", url, "--cacert", str(pki.ca.cert), "--api-key", key, "--output", str(output)]
        assert client_main(arguments) == 0
        assert len(output.read_text().splitlines()) == 298
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
        assert key not in container.logs()
