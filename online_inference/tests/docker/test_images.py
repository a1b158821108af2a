"""Spec: three images (full, slim, distroless) serve the same app and bundled model: the client's
predictions on the Kaggle CSV equal the in-process model's, bit for bit (slim and distroless on
numpy built without BLAS, the full image on PyPI's wheels); they run as non-root, read-only, with
no capabilities; their /docs render offline; HEALTHCHECK works without curl or a shell; OCI labels name source, version,
revision and base; no layer or config holds a credential or the build machine's CA bundle."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from online_inference.client.cli import main as client_main
from online_inference.export.data import load_kaggle_csv
from online_inference.docker.dockercli import DOCKER, HARDENED, VARIANTS, docker, free_port, inspect, running
from online_inference.tests.browser import render
from online_inference.tests.helpers import bundled_session

HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# What a leaked credential looks like in a build command or the config (the Dockerfiles mention
# the secret's mount path /run/secrets/pip_cert, which is not a credential).
CREDENTIAL_MARKERS = (
    "BEGIN CERTIFICATE", "PRIVATE KEY", "AWS_SECRET_ACCESS_KEY=", "AWS_ACCESS_KEY_ID=",
    "AWS_SESSION_TOKEN=", "PASSWORD=", "TOKEN=", "pip_cert,src=",
)


def assert_predicts_like_the_model(url: str, kaggle_csv: Path, tmp_path: Path) -> None:
    output = tmp_path / "predictions.json"
    assert client_main([str(kaggle_csv), "--url", url, "--batch-size", "100", "--output", str(output)]) == 0
    predictions = json.loads(output.read_text())
    expected = bundled_session().run(load_kaggle_csv(kaggle_csv).X.astype(np.float32))
    assert [p["condition"] for p in predictions] == expected.labels.tolist()
    assert np.array([p["probability"] for p in predictions], dtype=np.float32).tobytes() == expected.positive.tobytes()


@pytest.mark.parametrize("variant", VARIANTS)
def test_image_serves_the_bundled_model_hardened(images: dict[str, str], variant: str, kaggle_csv: Path, tmp_path: Path) -> None:
    with running(images[variant], *HARDENED) as container:
        assert_predicts_like_the_model(container.url, kaggle_csv, tmp_path)
        assert container.top_uids() == {"65532"}, "the server runs as the non-root user"


NUMPY_BUILD = ("import pathlib, numpy; c = numpy.__config__.CONFIG['Build Dependencies']; "
               "print(c['blas']['name'], c['lapack']['name'], pathlib.Path(numpy.__file__).parent.with_name('numpy.libs').exists())")


@pytest.mark.parametrize(("variant", "build"), [("full", "scipy-openblas scipy-openblas True"),
                                                ("slim", "none none False"), ("distroless", "none none False")])
def test_slim_and_distroless_run_numpy_built_without_blas(images: dict[str, str], variant: str, build: str) -> None:
    """numpy's BLAS and LAPACK, and the libraries PyPI's wheel bundles (numpy.libs), as built."""
    result = docker("run", "--rm", "--network", "host", "--entrypoint", "/venv/bin/python3", images[variant], "-c", NUMPY_BUILD)
    assert result.stdout.strip() == build


@pytest.mark.parametrize("variant", VARIANTS)
def test_image_serves_its_docs_offline(images: dict[str, str], variant: str) -> None:
    """/docs renders every operation in a browser that can reach nothing but the container."""
    with running(images[variant], *HARDENED) as container:
        dom = render(container.url + "/docs", screenshot=f"docs-{variant}.png")
        operations = httpx.get(container.url + "/openapi.json").json()["paths"]
    assert set(re.findall(r'data-path="([^"]+)"', dom)) == set(operations)


@pytest.mark.parametrize("variant", VARIANTS)
def test_image_config_is_non_root_with_labels_and_exec_form(images: dict[str, str], variant: str) -> None:
    config = inspect(images[variant])["Config"]
    assert config["User"] == "65532:65532"
    assert config["ExposedPorts"] == {"8000/tcp": {}, "8081/tcp": {}}  # HTTP, gRPC
    assert config["Entrypoint"][0].startswith("/venv/bin/python")
    labels = config["Labels"]
    for key in ("source", "version", "revision", "base.name"):
        assert labels.get(f"org.opencontainers.image.{key}"), key
    assert labels["org.opencontainers.image.revision"] != "unknown"
    assert "HOST=0.0.0.0" in config["Env"]
    assert config["Healthcheck"]["Test"][0] == "CMD", "exec form: no shell needed"


def test_distroless_has_no_shell(images: dict[str, str]) -> None:
    result = docker("run", "--rm", "--network", "host", "--entrypoint", "/bin/sh", images["distroless"], "-c", "true", check=False)
    assert result.returncode != 0


@pytest.mark.parametrize("variant", ["slim", "distroless"])
def test_docker_healthcheck_reports_healthy(images: dict[str, str], variant: str) -> None:
    # The HEALTHCHECK probes PORT, so it is chosen before the start.
    with running(images[variant], *HARDENED, "--health-interval=1s", "--health-start-period=1s",
                 port=free_port()) as container:
        deadline = time.monotonic() + 30
        status = ""
        while time.monotonic() < deadline and status != "healthy":
            status = docker("inspect", "-f", "{{.State.Health.Status}}", container.name).stdout.strip()
            time.sleep(0.5)  # polling docker's health status, until the deadline
        assert status == "healthy", container.logs()


@pytest.mark.parametrize("variant", VARIANTS)
def test_no_credential_in_any_layer_or_config(images: dict[str, str], variant: str) -> None:
    image = images[variant]
    history = docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", image).stdout
    config = json.dumps(inspect(image)["Config"])
    for marker in CREDENTIAL_MARKERS:
        assert marker.lower() not in history.lower(), f"{marker!r} in docker history"
        assert marker.lower() not in config.lower(), f"{marker!r} in the image config"
    assert_no_host_ca_bundle(image)


def assert_no_host_ca_bundle(image: str) -> None:
    """The build machine's CA bundle (handed to pip as a BuildKit secret) is in no layer."""
    if not HOST_CA_BUNDLE.exists():  # nothing to leak; CI builds with it, so there it must exist
        if os.environ.get("CI") == "true":
            pytest.fail(f"{HOST_CA_BUNDLE} is missing: .ci/run builds the images with it")
        pytest.skip(f"{HOST_CA_BUNDLE} is absent: no CA bundle was handed to the builds")
    bundle_digest = hashlib.sha256(HOST_CA_BUNDLE.read_bytes()).hexdigest()
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "image.tar"
        subprocess.run([DOCKER, "save", "-o", str(archive), image], check=True, timeout=600)
        with tarfile.open(archive) as saved:
            layers = [m for m in saved.getmembers() if m.name.endswith("layer.tar") or m.name.startswith("blobs/")]
            for member in layers:
                data = saved.extractfile(member)
                if data is None:
                    continue
                try:
                    layer = tarfile.open(fileobj=io.BytesIO(data.read()))
                except tarfile.ReadError:
                    continue  # a config or manifest blob
                for entry in layer.getmembers():
                    assert "pip_cert" not in entry.name, entry.name
                    if entry.isfile() and entry.size == HOST_CA_BUNDLE.stat().st_size:
                        digest = hashlib.sha256(layer.extractfile(entry).read()).hexdigest()  # type: ignore[union-attr]
                        assert digest != bundle_digest, f"the host CA bundle is in {image}: {entry.name}"
