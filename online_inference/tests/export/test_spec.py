"""Spec: a feature spec is read from JSON and checked (kinds, bounds, codes, names, target, the
target's optional class labels); a table that does not fit its spec is refused before training,
with every problem listed; and the service's code names no feature and no target: everything
model-specific comes from the card."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

import pytest

from online_inference.export.__main__ import main as export_main
from online_inference.export.data import load_table
from online_inference.export.spec import HEART_SPEC, ModelSpec, load_spec

PACKAGE = Path(__file__).resolve().parents[2]
SERVICE_CODE = [*sorted((PACKAGE / "app").rglob("*.py")), PACKAGE / "card.py", *sorted((PACKAGE / "client").rglob("*.py")), PACKAGE / "healthcheck.py"]

SPEC: dict[str, Any] = {
    "name": "toy-risk-classifier", "version": "0.1.0", "description": "A toy.", "target": "outcome",
    "features": [
        {"name": "age", "kind": "numeric", "meaning": "Age", "unit": "years", "bounds": [18, 110]},
        {"name": "smoker", "kind": "binary", "meaning": "Smokes", "codes": {"0": "no", "1": "yes"}},
        {"name": "region", "kind": "categorical", "meaning": "Region", "codes": {"0": "north", "1": "south", "2": "east"}},
    ],
}


def write_spec(path: Path, **change: Any) -> Path:
    path.write_text(json.dumps({**SPEC, **change}))
    return path


def write_table(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows([header, *rows])
    return path


def feature(index: int, **change: Any) -> list[dict[str, Any]]:
    features = json.loads(json.dumps(SPEC["features"]))
    features[index].update(change)
    return features


def test_the_heart_spec_is_a_spec_like_any_other() -> None:
    heart = load_spec(HEART_SPEC)
    assert isinstance(heart, ModelSpec) and heart.target == "condition" and len(heart.features) == 13
    assert heart.features[1].codes == {0: "female", 1: "male"}


def test_the_targets_classes_may_have_labels_as_codes_do(tmp_path: Path) -> None:
    labelled = load_spec(write_spec(tmp_path / "spec.json", classes={"0": "low risk", "1": "high risk"}))
    assert labelled.classes == {0: "low risk", 1: "high risk"}
    assert load_spec(write_spec(tmp_path / "plain.json")).classes is None  # optional


BROKEN = [
    ("a numeric feature without bounds", {"features": feature(0, bounds=None)}, "age: a numeric feature has bounds"),
    ("reversed bounds", {"features": feature(0, bounds=[110, 18])}, r"age: bounds must be \[low, high\]"),
    ("a coded feature with bounds", {"features": feature(2, bounds=[0, 2])}, "region: a categorical feature has codes and no bounds"),
    ("codes with a gap", {"features": feature(2, codes={"0": "a", "2": "b"})}, "region: codes must be consecutive integers"),
    ("a binary feature of three codes", {"features": feature(1, codes={"0": "a", "1": "b", "2": "c"})}, "smoker: a binary feature has exactly two codes"),
    ("an unknown kind", {"features": feature(0, kind="ordinal")}, r"spec.features\[0\].kind: 'ordinal' is not one of"),
    ("a repeated feature", {"features": [*SPEC["features"], SPEC["features"][0]]}, r"repeated: \['age'\]"),
    ("a target that is a feature", {"target": "age"}, "the target 'age' is also a feature"),
    ("a target named like an answer's key", {"target": "probability"}, "the target cannot be named 'probability'"),
    ("a missing field", {"target": None}, "spec.target: expected str"),
    ("three classes", {"classes": {"0": "low", "1": "mid", "2": "high"}}, r"classes: the target has two integer classes >= 0, got \[0, 1, 2\]"),
    ("a negative class", {"classes": {"-1": "low", "1": "high"}}, "classes: the target has two integer classes >= 0"),
    ("a class that is not an integer", {"classes": {"low": "low", "1": "high"}}, "spec.classes: expected an integer key"),
    ("a label shared by both classes", {"classes": {"0": "risk", "1": "risk"}}, "classes: each class needs its own label"),
    ("an empty label", {"classes": {"0": " ", "1": "high"}}, "classes: each class needs its own label"),
    ("a label that is not a string", {"classes": {"0": 0, "1": "high"}}, "spec.classes.0: expected str"),
]


@pytest.mark.parametrize(("case", "change", "message"), BROKEN, ids=[c[0] for c in BROKEN])
def test_a_broken_spec_is_refused_naming_the_file_and_the_problem(tmp_path: Path, case: str, change: dict[str, Any], message: str) -> None:
    path = write_spec(tmp_path / "spec.json", **change)
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*" + message):
        load_spec(path)


def test_a_table_that_does_not_fit_its_spec_is_refused_with_every_problem(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path / "spec.json"))
    table = write_table(tmp_path / "t.csv", ["age", "smoker", "region", "outcome"], [
        [40, 1, 0, 0],
        [150, 1, 0, 1],  # age outside its bounds
        [40, 2, 0, 1],  # a smoker code not listed
        [40, 0, 1.5, 2],  # a region code not listed; a third class
        ["x", 0, 0, 1],  # not a number
    ])
    with pytest.raises(ValueError) as refused:
        load_table(table, spec)
    assert str(refused.value).splitlines() == [
        f"{table} does not fit the spec 'toy-risk-classifier' (5 problems):",
        "  line 3, age: 150 is outside the bounds [18, 110]",
        "  line 4, smoker: 2 is not one of the codes [0, 1]",
        "  line 5, region: 1.5 is not one of the codes [0, 1, 2]",
        "  line 6, age: 'x' is not a number",
        "  the target 'outcome' must have two classes, integers >= 0; the table has ['0', '1', '2']",
    ]


def test_a_table_without_the_spec_columns_is_refused_naming_them(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path / "spec.json"))
    table = write_table(tmp_path / "t.csv", ["age", "smoker"], [[40, 1]])
    with pytest.raises(ValueError, match=re.escape("missing columns ['region', 'outcome']")):
        load_table(table, spec)


def test_the_export_refuses_before_training_and_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_spec(tmp_path / "spec.json")
    table = write_table(tmp_path / "t.csv", ["age", "smoker", "region", "outcome"], [[40, 1, 0, 0], [200, 1, 0, 1]])
    output = tmp_path / "model.onnx"
    assert export_main(["--data", str(table), "--spec", str(spec), "--output", str(output)]) == 2
    assert "line 3, age: 200 is outside the bounds [18, 110]" in capsys.readouterr().err
    assert not output.exists()


def test_a_spec_of_your_own_needs_its_table(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        export_main(["--spec", str(write_spec(tmp_path / "spec.json"))])


def test_the_service_code_names_no_feature_and_no_target() -> None:
    heart = load_spec(HEART_SPEC)
    names = re.compile(r"\b(" + "|".join(map(re.escape, [*heart.feature_names, heart.target])) + r")\b")
    found = [f"{path.name}:{number}: {line.strip()}" for path in SERVICE_CODE
             for number, line in enumerate(path.read_text().splitlines(), 1) if names.search(line)]
    assert found == []
