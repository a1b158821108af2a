"""What the tests of model stores share: a model store over HTTP whose artifacts a test changes
as it runs, other models to swap to (#34), and moto's S3 server with a client of it."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from online_inference.app.settings import BUNDLED_MODEL
from online_inference.card import CARD_METADATA_KEY
from online_inference.export.data import SHIPPED_TABLE
from online_inference.tests.helpers import bundled_card

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "online_inference" / "data" / "heart.spec.json"
GARBAGE = b"not an ONNX model at all\n" * 40


@contextmanager
def moto_s3(region: str = "us-east-1", key_id: str = "test", secret: str = "test", port: int | None = None,
            bucket: str | None = None) -> Iterator[tuple[str, Any]]:
    """moto's S3 server on 127.0.0.1 (on ``port``, or a free one), its endpoint and a client of it
    with these credentials, and ``bucket`` created in ``region`` if given; stopped at the end
    (moto's state is per process: each test names its own bucket)."""
    import boto3  # the tests' S3 libraries, imported only by the tests that use them
    from moto.server import ThreadedMotoServer

    from online_inference.docker.dockercli import free_port

    port = port or free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        client = boto3.client("s3", endpoint_url=endpoint, region_name=region, aws_access_key_id=key_id,
                              aws_secret_access_key=secret)
        if bucket is not None:
            location = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
            client.create_bucket(Bucket=bucket, **location)
        yield endpoint, client
    finally:
        server.stop()


def sha256(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def bundled_bytes_with(**change: object) -> bytes:
    """The bundled model's bytes with its card changed (a version, a name): the same graph."""
    import onnx  # the export's library, which the service never loads

    model = onnx.load_from_string(BUNDLED_MODEL.read_bytes())
    onnx.helper.set_model_props(model, {CARD_METADATA_KEY: dataclasses.replace(bundled_card(), **change).to_json()})
    return model.SerializeToString()  # type: ignore[no-any-return]


def export_other_model(where: Path, version: str, rows: int = 150) -> bytes:
    """A model of the same name and features trained again on the first ``rows`` rows of the
    shipped table (other weights, so other probabilities), its card of ``version``: ``make
    model``'s export, run on them (a few seconds)."""
    where.mkdir(parents=True, exist_ok=True)
    with SHIPPED_TABLE.open() as table:
        lines = table.readlines()[: rows + 1]
    (where / "subset.csv").write_text("".join(lines))
    spec = json.loads(SPEC.read_text())
    (where / "spec.json").write_text(json.dumps({**spec, "version": version}))
    output = where / f"heart-{version}.onnx"
    subprocess.run([sys.executable, "-m", "online_inference.export", "--data", str(where / "subset.csv"),
                    "--spec", str(where / "spec.json"), "--output", str(output), "--quiet"],
                   check=True, cwd=ROOT, capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return output.read_bytes()


class ModelStore:
    """Artifacts by path, served over HTTP/1.1 (GET and HEAD) from a thread; each with an ETag (its
    sha256's first 16 digits) unless ``etags`` is off, and a count of the GETs and HEADs per path."""

    def __init__(self, etags: bool = True) -> None:
        self.artifacts: dict[str, bytes] = {}
        self.etags = etags
        self.gets: dict[str, int] = {}
        self.heads: dict[str, int] = {}
        self.lock = threading.Lock()
        store = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                store.answer(self, body=True)

            def do_HEAD(self) -> None:  # noqa: N802
                store.answer(self, body=False)

            def log_message(self, *args: object) -> None:
                """Quiet."""

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def put(self, path: str, payload: bytes) -> str:
        with self.lock:
            self.artifacts[path] = payload
        return f"{self.url}{path}"

    def answer(self, handler: http.server.BaseHTTPRequestHandler, body: bool) -> None:
        path = handler.path.split("?")[0]
        with self.lock:
            payload = self.artifacts.get(path)
            counts = self.gets if body else self.heads
            counts[path] = counts.get(path, 0) + 1
        if payload is None:
            handler.send_error(404)
            return
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(payload)))
        if self.etags:
            handler.send_header("ETag", f'"{sha256(payload)[:16]}"')
        handler.end_headers()
        if body:
            handler.wfile.write(payload)

    @contextmanager
    def running(self) -> Iterator[ModelStore]:
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()
