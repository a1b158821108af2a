"""Spec (#34): what the poll asks the store. ``current_etag`` is the store's ETag of the artifact
now, by one HEAD (signed with SigV4 for S3, as the GET is): the ETag ``fetch_artifact`` got with the
bytes, another once the artifact changed; None for a file and for a store that gives none; a
StorageError with the reason when the store cannot say."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from online_inference.app.model.storage import FetchPolicy, StorageError, current_etag, fetch_artifact
from online_inference.app.settings import BUNDLED_MODEL
from online_inference.docker.dockercli import free_port
from online_inference.tests.stores import GARBAGE, ModelStore, moto_s3

BUCKET, KEY = f"models-{uuid.uuid4().hex[:8]}", "heart/heart.onnx"


@pytest.fixture(scope="module")
def s3() -> Iterator[tuple[str, object]]:
    with moto_s3(bucket=BUCKET) as store:
        yield store


def test_the_etag_of_an_s3_object_is_the_gets_and_changes_with_it(s3: tuple[str, object], tmp_path: Path) -> None:
    endpoint, client = s3
    env = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1"}
    policy, uri = FetchPolicy(attempts=1, cache_dir=tmp_path), f"s3://{BUCKET}/{KEY}"
    client.put_object(Bucket=BUCKET, Key=KEY, Body=BUNDLED_MODEL.read_bytes())  # type: ignore[attr-defined]
    first = current_etag(uri, policy, env)
    fetched = fetch_artifact(uri, policy, env)
    assert first and fetched.etag == first and fetched.payload == BUNDLED_MODEL.read_bytes()
    client.put_object(Bucket=BUCKET, Key=KEY, Body=GARBAGE)  # type: ignore[attr-defined]
    assert current_etag(uri, policy, env) not in (None, first)
    with pytest.raises(StorageError, match="HTTP 404"):
        current_etag(f"s3://{BUCKET}/absent.onnx", policy, env)


def test_no_etag_for_a_file_or_a_store_that_gives_none(tmp_path: Path) -> None:
    policy = FetchPolicy(attempts=1, cache_dir=tmp_path)
    assert current_etag(str(BUNDLED_MODEL), policy) is None and fetch_artifact(str(BUNDLED_MODEL), policy).etag is None
    with ModelStore(etags=False).running() as store:
        uri = store.put("/heart.onnx", BUNDLED_MODEL.read_bytes())
        assert current_etag(uri, policy) is None and fetch_artifact(uri, policy).etag is None
    with pytest.raises(StorageError, match="ConnectError"):
        current_etag(f"http://127.0.0.1:{free_port()}/heart.onnx", policy)
