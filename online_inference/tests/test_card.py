"""Spec: the model card read from an ONNX file's metadata is checked — types, required fields, and
the rules between them — and a broken card is refused with the place of the problem; what export
writes reads back equal. Class labels are optional, and label exactly the model's classes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from online_inference.card import CARD_METADATA_KEY, ModelCard
from online_inference.tests.helpers import bundled_card


def card_json(**change: Any) -> dict[str, Any]:
    body = bundled_card().to_dict()
    del body["sha256"]
    body.update(change)
    return body


def read(body: dict[str, Any]) -> ModelCard:
    return ModelCard.from_metadata({CARD_METADATA_KEY: json.dumps(body)})


def test_what_export_writes_reads_back_equal() -> None:
    card = bundled_card()
    assert ModelCard.from_metadata({CARD_METADATA_KEY: card.to_json()}, card.sha256) == card


def test_codes_are_integers_as_json_objects_carry_them_as_strings() -> None:
    sex = read(card_json()).features[1]
    assert sex.codes == {0: "female", 1: "male"} and sex.is_integral


def test_class_labels_are_optional_and_read_as_integers_as_codes_are() -> None:
    assert bundled_card().class_labels is None and bundled_card().class_name(1) == "1"
    labelled = read(card_json(class_labels={"0": "no disease", "1": "disease"}))
    assert labelled.class_labels == {0: "no disease", 1: "disease"} and labelled.class_name(1) == "1 (disease)"
    assert ModelCard.from_metadata({CARD_METADATA_KEY: labelled.to_json()}) == labelled


def with_feature(index: int, **change: Any) -> dict[str, Any]:
    body = card_json()
    body["features"][index].update(change)
    return body


BROKEN = [
    ("a missing field", {k: v for k, v in card_json().items() if k != "classes"}, "card: missing 'classes'"),
    ("a string for a number", with_feature(0, example="63"), "card.features[0].example: expected a number"),
    ("a boolean for a number", with_feature(0, example=True), "card.features[0].example: expected a number"),
    ("an unknown kind", with_feature(0, kind="ordinal"), "card.features[0].kind: 'ordinal' is not one of"),
    ("a reversed range", with_feature(0, bounds={"min": 5, "max": 1}), "card.features[0].bounds: min 5.0 is greater than max"),
    ("codes with a gap", with_feature(2, codes={"0": "a", "3": "b"}), "card.features[2]: cp: codes must be every integer"),
    ("a non-integer code", with_feature(2, codes={"x": "a"}), "expected an integer key"),
    ("bounds stricter than training", with_feature(0, bounds={"min": 40, "max": 110}), "bounds are stricter than the training data"),
    ("a negative class", card_json(classes=[-1, 1], positive_class=1), "classes must be distinct non-negative integers"),
    ("a repeated class", card_json(classes=[1, 1], positive_class=1), "classes must be distinct non-negative integers"),
    ("an unknown positive class", card_json(positive_class=2), "the positive class must be one of the classes"),
    ("labels for a class the model lacks", card_json(class_labels={"0": "no", "2": "yes"}), "class_labels must label each class, [0, 1], and no other"),
    ("labels for one class of two", card_json(class_labels={"1": "yes"}), "class_labels must label each class"),
    ("repeated feature names", card_json(features=[*card_json()["features"], card_json()["features"][0]]), "feature names must be unique"),
]


@pytest.mark.parametrize(("case", "body", "message"), BROKEN, ids=[c[0] for c in BROKEN])
def test_a_broken_card_is_refused_with_the_place_of_the_problem(case: str, body: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        read(body)


def test_a_file_without_a_card_is_refused() -> None:
    with pytest.raises(ValueError, match="carries no 'model_card' metadata"):
        ModelCard.from_metadata({})
