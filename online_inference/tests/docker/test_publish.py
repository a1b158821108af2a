"""Spec: ``make push REGISTRY=...`` publishes the three images (and latest = distroless) to a real
registry; after deleting the local tags, ``docker pull`` + ``docker run`` serve the client."""

from __future__ import annotations

import subprocess
from pathlib import Path

from online_inference.docker.dockercli import HARDENED, IMAGE, ROOT, VARIANTS, docker, make, running
from online_inference.tests.docker.test_images import assert_predicts_like_the_model


def test_push_pull_run_predict(images: dict[str, str], registry: str, docker_engine: str, kaggle_csv: Path, tmp_path: Path) -> None:
    namespace = f"{registry}/heart"
    make("push", DOCKER=docker_engine, IMAGE=IMAGE, REGISTRY=namespace)
    tags = [f"{namespace}/{IMAGE}:{t}" for t in (*VARIANTS, "latest")]
    docker("rmi", *tags)
    for tag in tags:
        docker("pull", tag)
    assert docker("image", "inspect", "-f", "{{.Id}}", tags[-1]).stdout == docker("image", "inspect", "-f", "{{.Id}}", images["distroless"]).stdout
    with running(f"{namespace}/{IMAGE}:latest", *HARDENED) as container:
        assert_predicts_like_the_model(container.url, kaggle_csv, tmp_path)
    docker("rmi", *tags)


def test_push_without_registry_explains_usage(docker_engine: str) -> None:
    result = subprocess.run(["make", "-C", str(ROOT), "push", f"DOCKER={docker_engine}"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "usage: make push REGISTRY=" in result.stdout
