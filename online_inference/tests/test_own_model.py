"""Spec: a spec and a CSV are all a user needs to serve a binary classifier of their own. A toy
table made here — other features, another target, a rule no linear model can learn — goes through
the README's "Serve your own model" commands, verbatim but for the files' paths and the port: the
export (which compares candidates and serves skl2onnx's conversion of the trees it chose),
``MODEL_URI=file://... make serve`` and ``make client``. The service answers in the toy's own
terms everywhere: the answer's key and classes, 400 for its bounds and codes, ``/model``, OpenAPI,
V2 metadata and inference, metrics; the client writes and reports in them. Its trees mix features,
so it has no exact contributions: ``/explain`` and V2's ``contributions`` say why. And every shape of
spec the README allows goes the same way, export, service and client: two real tables without a
categorical feature (scikit-learn's breast-cancer copy, 30 numeric features named with spaces;
the heart table with its codes declared numeric), and a generated table for specs drawn by
hypothesis of each shape (all numeric, numeric and binary, categorical only, a single feature,
names with spaces and punctuation): the card has the spec's features, a folded graph has a
one-hot part only for codes, the client's answers are the graph's, and ``/explain`` gives
contributions of the spec's own features that add up to each row's logit."""

from __future__ import annotations

import csv
import io
import json
import re
import string
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_breast_cancer

from online_inference.app.model.session import ModelSession
from online_inference.card import read_json
from online_inference.devtools.paths import README
from online_inference.export.checks import float32_score_error, logit_gap
from online_inference.export.data import SHIPPED_TABLE, generated_rows, table_text
from online_inference.export.spec import HEART_SPEC, ModelSpec
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


def write_model_files(folder: Path, spec: dict[str, Any], table: str) -> None:
    """The spec and the table where :func:`local` puts the README's ``my-model.spec.json`` and ``my-table.csv``."""
    (folder / "toy.spec.json").write_text(json.dumps(spec))
    (folder / "toy.csv").write_text(table)


@contextmanager
def exported_and_served(folder: Path) -> Iterator[tuple[str, str]]:
    """The README's export of the folder's spec and table, then its serve command: the export's
    stdout, and the service's URL while it runs."""
    commands = readme_commands()
    exported = shell(local(commands["export"], folder))
    assert exported.returncode == 0, exported.stderr[-3000:]
    with serving(local(commands["serve"], folder), ROOT) as url:
        yield exported.stdout, url


def send_table(folder: Path, url: str) -> subprocess.CompletedProcess[str]:
    """The README's client command, sending the folder's table to ``url``."""
    return shell(local(readme_commands()["client"], folder) + f" URL={url}")


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Toy]:
    folder = tmp_path_factory.mktemp("own-model")
    rows = toy_rows()
    table = io.StringIO()
    csv.writer(table, lineterminator="\n").writerows([[*NAMES, "outcome"], *rows])
    write_model_files(folder, SPEC, table.getvalue())
    with exported_and_served(folder) as (export_output, url):
        yield Toy(folder, folder / "toy.csv", folder / "toy.onnx", rows, export_output, url)


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
    expected = ModelSession(toy.model.read_bytes()).run(np.array(X, dtype=np.float32))
    assert [p["outcome"] for p in answer["predictions"]] == expected.labels.tolist()
    probabilities = np.array([p["probability"] for p in answer["predictions"]], dtype=np.float32)
    np.testing.assert_array_equal(probabilities, expected.positive)  # each the model's float32, read back
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


def test_its_trees_mix_features_so_explain_answers_501_with_the_cards_reason(toy: Toy) -> None:
    card = httpx.get(toy.url + "/model").json()
    assert card["contributions"]["method"] == "none" and "mix features" in card["contributions"]["why"]
    response = httpx.post(toy.url + "/explain", json={"features": NAMES, "data": [[70, 0, 2]]})
    assert response.status_code == 501
    assert response.json() == {"error": f"model 'toy-risk-classifier' has no exact per-feature contributions: {card['contributions']['why']}"}
    v2 = {"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP32", "data": [70, 0, 2]}], "outputs": [{"name": "contributions"}]}
    refused = httpx.post(toy.url + "/v2/models/toy-risk-classifier/infer", json=v2)
    assert refused.status_code == 400 and card["contributions"]["why"] in refused.json()["error"]


def test_metrics_name_the_model_and_count_its_classes(toy: Toy) -> None:
    predict(toy, {"features": NAMES, "data": [[70, 0, 1]]})
    text = httpx.get(toy.url + "/metrics").text
    assert 'model_info{name="toy-risk-classifier",sha256=' in text and 'predicted_class_total{class="' in text


def test_the_client_sends_its_columns_and_reports_in_its_terms(toy: Toy) -> None:
    sent = send_table(toy.dir, toy.url)
    assert sent.returncode == 0, sent.stderr
    written = list(csv.reader(sent.stdout.splitlines()))
    assert written[0] == ["row", "outcome", "probability", "warnings"] and len(written) == len(toy.rows) + 1
    assert f"toy-risk-classifier 0.1.0: {len(toy.rows)} rows sent" in sent.stderr
    assert "  outcome 0" in sent.stderr and "  outcome 1" in sent.stderr


# Every shape of spec the README allows goes the same way: the export, the service and the client.
KINDS = ("numeric", "binary", "categorical")
NAME_CHARACTERS = string.ascii_letters + string.digits + " _-.,;:()[]/%#&'+*<>=?!|"


def breast_cancer() -> tuple[dict[str, Any], str]:
    """scikit-learn's copy of the UCI breast-cancer table (WDBC): 30 measurements, all numeric,
    named with spaces (``mean radius``); the target: 0 malignant, 1 benign."""
    table = load_breast_cancer()
    names = [str(name) for name in table.feature_names]
    features = [{"name": name, "kind": "numeric", "meaning": name, "bounds": [0, 2 * float(table.data[:, i].max())]}
                for i, name in enumerate(names)]
    spec = {"name": "wdbc", "version": "1.0.0", "description": "Benign tumour from 30 measurements.",
            "target": "benign", "classes": {"0": "malignant", "1": "benign"}, "features": features}
    rows = [dict(zip([*names, "benign"], [*values.tolist(), int(label)])) for values, label in zip(table.data, table.target)]
    return spec, table_text(load_spec_text(spec), rows)


def heart_coded_as_numeric() -> tuple[dict[str, Any], str]:
    """The heart table with every coded feature declared numeric, bounded by its codes."""
    heart = json.loads(HEART_SPEC.read_text())
    for feature in heart["features"]:
        codes = sorted(int(code) for code in feature.pop("codes", {}))
        feature.update(kind="numeric", bounds=feature.get("bounds", [codes[0], codes[-1]] if codes else None))
    return heart, SHIPPED_TABLE.read_text()


def load_spec_text(spec: dict[str, Any]) -> ModelSpec:
    return read_json(ModelSpec, spec, where="spec")  # type: ignore[no-any-return]


@st.composite
def feature_specs(draw: st.DrawFn, kind: str, name: str) -> dict[str, Any]:
    if kind == "numeric":
        low = draw(st.integers(-1000, 1000))
        return {"name": name, "kind": kind, "meaning": f"the {name}", "unit": "u", "bounds": [low, low + draw(st.integers(1, 500))]}
    count = 2 if kind == "binary" else draw(st.integers(2, 5))
    first = draw(st.integers(0, 3))
    return {"name": name, "kind": kind, "meaning": f"the {name}", "codes": {str(first + i): f"code {i}" for i in range(count)}}


@st.composite
def specs(draw: st.DrawFn, kinds: st.SearchStrategy[list[str]], names: st.SearchStrategy[str]) -> dict[str, Any]:
    """A spec whose features have the drawn kinds, in a drawn order, with drawn distinct names."""
    drawn = draw(kinds)
    feature_names = draw(st.lists(names.filter(lambda name: name != "outcome"), min_size=len(drawn), max_size=len(drawn), unique=True))
    features = [draw(feature_specs(kind, name)) for kind, name in zip(drawn, feature_names)]
    return {"name": "generated-classifier", "version": "0.0.1", "description": "A generated table.", "target": "outcome",
            "features": features}


PLAIN_NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True)
SHAPES = {
    "all-numeric": specs(st.lists(st.just("numeric"), min_size=1, max_size=5), PLAIN_NAMES),
    "numeric-and-binary": specs(st.tuples(st.lists(st.just("numeric"), min_size=1, max_size=3),
                                          st.lists(st.just("binary"), min_size=1, max_size=3)).flatmap(
                                              lambda kinds: st.permutations(kinds[0] + kinds[1])), PLAIN_NAMES),
    "categorical-only": specs(st.lists(st.just("categorical"), min_size=1, max_size=3), PLAIN_NAMES),
    "single-feature": specs(st.sampled_from(KINDS).map(lambda kind: [kind]), PLAIN_NAMES),
    "names-with-spaces-and-punctuation": specs(st.lists(st.sampled_from(KINDS), min_size=1, max_size=4),
                                               st.text(NAME_CHARACTERS, min_size=1, max_size=16)),
}


def check_explanations_in_its_own_terms(url: str, spec: dict[str, Any], card: dict[str, Any], table: str) -> None:
    """``/explain`` gives each row a contribution per feature of the spec, in its order, adding up
    with the baseline to the row's logit; or, for a model without exact ones, 501 with the card's reason."""
    names = [f["name"] for f in spec["features"]]
    records = list(csv.DictReader(io.StringIO(table)))[:50]
    response = httpx.post(url + "/explain", json={"features": names, "data": [[float(r[n]) for n in names] for r in records]})
    if card["contributions"]["method"] == "none":
        assert response.status_code == 501 and card["contributions"]["why"] in response.json()["error"]
        return
    rows = response.json()["predictions"]
    assert all(list(row["contributions"]) == names for row in rows)
    contributions = np.array([list(row["contributions"].values()) for row in rows], dtype=np.float32)
    X = np.array([[float(r[n]) for n in names] for r in records], dtype=np.float32)
    gap, allowed = logit_gap(rows[0]["baseline"], contributions, np.array([row["probability"] for row in rows], dtype=np.float32),
                             score_error_of(card, X))
    assert np.all(gap <= allowed)


def score_error_of(card: dict[str, Any], X: np.ndarray) -> np.ndarray | float:
    """What float32 does to a linear card's score for the rows ``X`` (the export's bound), in logit units."""
    features = card["features"]
    if any(f.get("weight") is None and f.get("code_weights") is None for f in features):
        return 0.0  # not a linear model's card
    weights = np.array([f["weight"] or 0.0 if f.get("code_weights") is None else 0.0 for f in features])
    raw_means = np.array([f["mean"] if f.get("code_weights") is None else 0.0 for f in features])
    code_means = np.array([f["mean"] for f in features if f.get("code_weights") is not None])
    return float32_score_error(weights, raw_means, code_means, card["contributions"]["baseline"], X)


def check_it_exports_serves_and_answers(spec: dict[str, Any], table: str) -> None:
    """Through the README's commands: the card is the spec's, the graph folded when the model is
    linear (without a one-hot part when there are no codes), the client's answers the graph's."""
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        write_model_files(folder, spec, table)
        with exported_and_served(folder) as (export_output, url):
            card = httpx.get(url + "/model").json()
            sent = send_table(folder, url)
            check_explanations_in_its_own_terms(url, spec, card, table)
        assert [(f["name"], f["kind"]) for f in card["features"]] == [(f["name"], f["kind"]) for f in spec["features"]]
        assert card["target"] == spec["target"] and f"served {card['graph']}" in export_output
        assert card.get("class_labels") == spec.get("classes")  # the spec's labels, if it gives any
        nodes = [node.op_type for node in onnx.load(folder / "toy.onnx").graph.node]
        if card["graph"] == "folded":
            one_hot = ["MatMul", "Equal", "Cast", "Concat"] if any(f["kind"] == "categorical" for f in spec["features"]) else []
            assert nodes == [*one_hot, "Gemm", "Sigmoid", "ArgMax", "Gather", "If"]  # the If: contributions, when asked
        assert sent.returncode == 0, sent.stderr
        assert card["contributions"]["method"] in ("linear", "additive trees") or card["graph"] == "converted"
        model, records = ModelSession((folder / "toy.onnx").read_bytes()), list(csv.DictReader(io.StringIO(table)))
        X = np.array([[float(record[f["name"]]) for f in spec["features"]] for record in records], dtype=np.float32)
        written = list(csv.DictReader(io.StringIO(sent.stdout)))
        assert [int(row[spec["target"]]) for row in written] == model.run(X).labels.tolist()


@pytest.mark.parametrize("table", [breast_cancer, heart_coded_as_numeric], ids=lambda table: table.__name__)
def test_a_real_table_without_categorical_features_exports_serves_and_answers(table: Any) -> None:
    check_it_exports_serves_and_answers(*table())


@pytest.mark.parametrize("shape", SHAPES)
def test_a_generated_table_of_each_shape_of_spec_exports_serves_and_answers(shape: str) -> None:
    @settings(max_examples=2, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(spec=SHAPES[shape])
    def exports_serves_and_answers(spec: dict[str, Any]) -> None:
        check_it_exports_serves_and_answers(spec, table_text(load_spec_text(spec), generated_rows(load_spec_text(spec), 300)))

    exports_serves_and_answers()
