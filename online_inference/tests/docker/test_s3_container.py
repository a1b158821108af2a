"""Spec: the distroless image downloads its model from S3 at start-up (MODEL_URI, AWS_* at run
time only) and serves it; a wrong pin fails without serving."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from online_inference.app.settings import BUNDLED_MODEL
from online_inference.docker.dockercli import HARDENED, running
from online_inference.tests.docker.test_images import assert_predicts_like_the_model
from online_inference.tests.stores import moto_s3
from online_inference.tests.helpers import wait_until


@pytest.fixture(scope="module")
def s3_model() -> Iterator[dict[str, str]]:
    bucket = f"container-models-{uuid.uuid4().hex[:8]}"  # moto's state is per process: no clash
    with moto_s3("eu-west-1", "testing", "testing-secret", bucket=bucket) as (endpoint, s3):
        s3.put_object(Bucket=bucket, Key="heart/heart.onnx", Body=BUNDLED_MODEL.read_bytes())
        yield {
            "MODEL_URI": f"s3://{bucket}/heart/heart.onnx",
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing-secret",
            "AWS_REGION": "eu-west-1",
        }


def test_distroless_serves_a_model_from_s3(images: dict[str, str], s3_model: dict[str, str], kaggle_csv: Path, tmp_path: Path) -> None:
    pin = hashlib.sha256(BUNDLED_MODEL.read_bytes()).hexdigest()
    with running(images["distroless"], *HARDENED, env={**s3_model, "MODEL_SHA256": pin}) as container:
        assert httpx.get(container.url + "/health").json()["model"]["sha256"] == pin
        assert_predicts_like_the_model(container.url, kaggle_csv, tmp_path)
        logs = container.logs()
        assert f"fetched model {s3_model['MODEL_URI']}" in logs
        assert "testing-secret" not in logs


def test_distroless_refuses_a_model_with_the_wrong_pin(images: dict[str, str], s3_model: dict[str, str]) -> None:
    with running(images["distroless"], *HARDENED, env={**s3_model, "MODEL_SHA256": "f" * 64}, wait=False) as container:
        def failed() -> bool:
            body = httpx.get(container.url + "/health").json()
            return body["status"] == "failed"

        wait_until(failed, 30)
        health = httpx.get(container.url + "/health")
        assert health.status_code == 503 and "sha256 mismatch" in health.json()["reason"]
        predict = httpx.post(container.url + "/predict", json={"instances": []})
        assert predict.status_code == 503 and "sha256 mismatch" in predict.json()["error"]  # it serves nothing
