"""Spec: a spec and a CSV are all a user needs to serve a binary classifier of their own. A toy
table made here — other features, another target, a rule no linear model can learn — goes through
the README's "Serve your own model" commands, verbatim but for the files' paths and the port: the
export (which compares candidates and serves skl2onnx's conversion of the trees it chose),
``MODEL_URI=file://... make serve`` and ``make client``. The service answers in the toy's own
terms everywhere: the answer's key and classes, 400 for its bounds and codes, ``/model``, OpenAPI,
V2 metadata and inference, metrics; the client writes and reports in them."""

from __future__ import annotations

import csv
import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from online_inference.app.session import ModelSession
from online_inference.docs import README
from online_inference.tests.helpers import serving, user_environment

ROOT = README.parent
SPEC: dict[str, Any] = {
    "name": "toy-risk-classifier", "version": "0.1.0", "target": "outcome",
    "description": "Risk of the toy outcome from age, smoking and region (a table made by the test).",
    "features": [
        {"name": "age", "kind": "numeric", "meaning": "Age", "unit": "years", "bounds": [18, 110]},
        {"name": "smoker", "kind": "binary", "meaning": "Smokes", "codes": {"0": "no", "1": "yes"}},
        {"name": "region", "kind": "categorical", "meaning": "Region", "codes": {"0": "north", "1": "south", "2": "east"}},
    ],
}
NAMES = ["age", "smoker", "region"]


def toy_rows(count: int = 400) -> list[list[int]]:
    """The young and the old are at risk, except in the east, where it is the reverse; 5% noise."""
    rng = np.random.default_rng(7)
    rows = []
    for _ in range(count):
        age, smoker, region = int(rng.integers(20, 91)), int(rng.integers(0, 2)), int(rng.integers(0, 3))
        outcome = int((age < 35 or age > 65) != (region == 2))
        rows.append([age, smoker, region, outcome ^ int(rng.random() < 0.05)])
    return rows


@dataclass(frozen=True)
class Toy:
    dir: Path
    table: Path
    model: Path
    rows: list[list[int]]
    export_output: str
    url: str


def readme_commands() -> dict[str, str]:
    """The section's commands, by their first word (``make``, ``MODEL_URI=...``)."""
    section = README.read_text().split("## Serve your own model", 1)[1].split("\n## ", 1)[0]
    commands = [block.strip() for block in re.findall(r"```bash\n(.*?)```", section, re.S)]
    return {"export": commands[0], "serve": commands[1], "client": commands[2]}


def local(command: str, folder: Path) -> str:
    """A README command on the test's files (the README's run in the user's directory)."""
    for name, path in (("$PWD/my-model.onnx", "toy.onnx"), ("my-model.spec.json", "toy.spec.json"),
                       ("my-model.onnx", "toy.onnx"), ("my-table.csv", "toy.csv")):
        command = command.replace(name, str(folder / path))
    return command


def shell(command: str) -> subprocess.CompletedProcess[str]:
    env = user_environment()
    return subprocess.run(command, shell=True, capture_output=True, text=True, timeout=600, cwd=ROOT, env=env)


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Toy]:
    folder = tmp_path_factory.mktemp("own-model")
    (folder / "toy.spec.json").write_text(json.dumps(SPEC))
    rows = toy_rows()
    with (folder / "toy.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows([[*NAMES, "outcome"], *rows])
    commands = readme_commands()
    exported = shell(local(commands["export"], folder))
    assert exported.returncode == 0, exported.stderr[-3000:]
    with serving(local(commands["serve"], folder), ROOT) as url:
        yield Toy(folder, folder / "toy.csv", folder / "toy.onnx", rows, exported.stdout, url)


def predict(toy: Toy, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(toy.url + "/predict", json=body, timeout=30)


def test_the_export_compares_linear_models_and_trees_and_serves_the_trees_as_converted(toy: Toy) -> None:
    card = httpx.get(toy.url + "/model").json()
    assert (card["name"], card["version"], card["target"], card["classes"]) == ("toy-risk-classifier", "0.1.0", "outcome", [0, 1])
    assert card["classifier"] == "GradientBoostingClassifier" and card["graph"] == "converted"
    assert {c["classifier"] for c in card["compared"]} == {"LogisticRegression", "GradientBoostingClassifier"}
    assert [f["name"] for f in card["features"]] == NAMES and card["features"][2]["codes"] == SPEC["features"][2]["codes"]
    assert "served converted" in toy.export_output


def test_answers_are_in_the_toys_own_terms_and_are_the_models(toy: Toy) -> None:
    X = [row[:3] for row in toy.rows]
    answer = predict(toy, {"features": NAMES, "data": X}).json()
    expected = ModelSession(toy.model.read_bytes()).predict(np.array(X, dtype=np.float32))
    assert [p["outcome"] for p in answer["predictions"]] == expected.labels.tolist()
    assert [p["probability"] for p in answer["predictions"]] == np.round(expected.positive.astype(np.float64), 6).tolist()
    assert answer["model"] == {"name": "toy-risk-classifier", "version": "0.1.0"}
    accuracy = np.mean([p["outcome"] == row[3] for p, row in zip(answer["predictions"], toy.rows)])
    assert accuracy > 0.9, accuracy  # trees learn the rule (a linear model cannot)
    one = predict(toy, {"instances": [{"age": 70, "smoker": 0, "region": 2}]}).json()["predictions"]
    assert set(one[0]) == {"outcome", "probability", "warnings"}


@pytest.mark.parametrize(("row", "feature", "reason"), [
    ([150, 0, 1], "age", "150 is outside the plausible range [18, 110]"),
    ([40, 0, 5], "region", "5 is not one of the codes [0, 1, 2]"),
    ([40, 2, 1], "smoker", "2 is not one of the codes [0, 1]"),
])
def test_its_bounds_and_codes_answer_400(toy: Toy, row: list[int], feature: str, reason: str) -> None:
    response = predict(toy, {"features": NAMES, "data": [row]})
    assert response.status_code == 400
    assert response.json()["problems"] == [{"row": 0, "feature": feature, "reason": reason}]


def test_openapi_documents_its_features_and_its_answer(toy: Toy) -> None:
    document = httpx.get(toy.url + "/openapi.json").json()
    assert document["info"]["description"].startswith(SPEC["description"])
    body = document["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert body["examples"]["rows"]["value"]["features"] == NAMES
    assert set(body["examples"]["instances"]["value"]["instances"][0]) == set(NAMES)
    row = document["components"]["schemas"]["RowPrediction"]
    assert row["required"] == ["outcome", "probability", "warnings"] and row["properties"]["outcome"]["enum"] == [0, 1]


def test_v2_describes_and_serves_it_by_its_name_and_version(toy: Toy) -> None:
    path = "/v2/models/toy-risk-classifier"
    metadata = httpx.get(toy.url + path).json()
    assert metadata["versions"] == ["0.1.0"] and metadata["inputs"][0]["shape"] == [-1, 3]
    assert httpx.get(toy.url + "/v2/models/heart-disease-classifier").status_code == 404
    request = {"inputs": [{"name": metadata["inputs"][0]["name"], "shape": [1, 3], "datatype": "FP32", "data": [70, 0, 2]}]}
    answer = httpx.post(toy.url + path + "/versions/0.1.0/infer", json=request).json()
    assert answer["model_name"] == "toy-risk-classifier" and answer["model_version"] == "0.1.0"


def test_metrics_name_the_model_and_count_its_classes(toy: Toy) -> None:
    predict(toy, {"features": NAMES, "data": [[70, 0, 1]]})
    text = httpx.get(toy.url + "/metrics").text
    assert 'model_info{name="toy-risk-classifier",sha256=' in text and 'predicted_class_total{class="' in text


def test_the_client_sends_its_columns_and_reports_in_its_terms(toy: Toy) -> None:
    sent = shell(local(readme_commands()["client"], toy.dir) + f" URL={toy.url}")
    assert sent.returncode == 0, sent.stderr
    written = list(csv.reader(sent.stdout.splitlines()))
    assert written[0] == ["row", "outcome", "probability", "warnings"] and len(written) == len(toy.rows) + 1
    assert f"toy-risk-classifier 0.1.0: {len(toy.rows)} rows sent" in sent.stderr
    assert "  outcome 0" in sent.stderr and "  outcome 1" in sent.stderr
