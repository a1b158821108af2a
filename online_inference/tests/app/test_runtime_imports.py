"""Spec: the service imports neither scikit-learn nor pandas (its images do not ship them), calls
no numpy function that uses BLAS or LAPACK (the slim and distroless images build numpy without
them), and its runtime phones nowhere."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
SERVICE_CODE = [*sorted((ROOT / "online_inference" / "app").rglob("*.py")), ROOT / "online_inference" / "card.py"]
# numpy's entry points into BLAS and LAPACK: matrix products, and the linear algebra package.
USES_BLAS = re.compile(r"\b(np|numpy)\.(dot|vdot|inner|outer|matmul|tensordot|einsum|kron|linalg)\b|\.dot\(|[\w\])] @ [\w(]")

PROBE = """
import sys
from fastapi.testclient import TestClient
from online_inference.app.compose import create_app
from online_inference.tests.helpers import loaded, valid_row
app = create_app()
with TestClient(app) as client:
    assert loaded(app.plane, 10)
    card = app.plane.served.card
    assert client.post("/predict", json={"features": card.feature_names, "data": [valid_row(card)]}).status_code == 200
    client.get("/openapi.json"); client.get("/metrics")
import online_inference.client.cli
loaded = sorted(m for m in sys.modules if m.split(".")[0] in {"sklearn", "pandas", "scipy", "skl2onnx", "onnx"})
print(",".join(loaded))
"""


def test_service_and_client_import_neither_sklearn_nor_pandas() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, env=env)
    assert result.stdout.strip() == "", f"loaded: {result.stdout}"


def test_the_service_calls_no_numpy_function_that_uses_blas() -> None:
    found = [f"{path.name}:{number}: {line.strip()}" for path in SERVICE_CODE
             for number, line in enumerate(path.read_text().splitlines(), 1) if USES_BLAS.search(line)]
    assert found == []


def test_onnxruntime_telemetry_is_off(tmp_path: Path) -> None:
    """ONNX Runtime's telemetry would write a device id under $HOME and upload: the service opts out."""
    env = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"}
    env.update(PYTHONPATH=str(ROOT), HOME=str(tmp_path))
    subprocess.run([sys.executable, "-c", "import online_inference.app.model.session"], check=True, env=env)
    assert list(tmp_path.iterdir()) == []
