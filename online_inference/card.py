"""The model card: the one description of the model that export writes and the service reads.

The card travels inside the ONNX file (``metadata_props["model_card"]``), so the sha256 of the file
covers both the graph and the card.  Everything the service validates or documents (feature order,
kinds, codes, bounds, examples) comes from here and is written nowhere else.

Plain frozen dataclasses, checked on construction, read from JSON by :func:`read_json` (types,
required fields): the service's start path loads no validation framework for them.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

CARD_METADATA_KEY = "model_card"
ANSWER_KEYS = ("probability", "warnings")  # what a /predict answer holds beside the target's class

FeatureKind = Literal["numeric", "binary", "categorical"]


@dataclass(frozen=True)
class Range:
    """A closed interval ``[min, max]``."""

    min: float
    max: float

    def __post_init__(self) -> None:
        if self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")

    def contains(self, value: float) -> bool:
        return self.min <= value <= self.max


@dataclass(frozen=True)
class Feature:
    """One input column, in the order the model takes it."""

    name: str
    kind: FeatureKind
    description: str
    bounds: Range  # plausible values: anything outside is rejected with 400
    training: Range  # range seen in training: outside it a prediction warns
    example: float  # a typical value, used in the OpenAPI examples
    unit: str | None = None
    codes: dict[int, str] | None = None  # allowed integer codes and their meaning (binary / categorical)
    # A linear model's terms, so that anyone can redo a row's contributions (see Contributions):
    weight: float | None = None  # per unit of a raw column (numeric, binary): contribution = weight × (value − mean)
    code_weights: dict[int, float] | None = None  # per code of a categorical feature: contribution = its code's weight − mean
    mean: float | None = None  # over the training rows: of the value, or of a categorical feature's code weight

    def __post_init__(self) -> None:
        if self.kind == "numeric" and self.codes:
            raise ValueError(f"{self.name}: a numeric feature has no codes")
        if self.kind != "numeric" and not self.codes:
            raise ValueError(f"{self.name}: a {self.kind} feature needs its codes")
        if self.codes and sorted(self.codes) != list(range(int(self.bounds.min), int(self.bounds.max) + 1)):
            raise ValueError(f"{self.name}: codes must be every integer from bounds.min to bounds.max")
        if not (self.bounds.contains(self.training.min) and self.bounds.contains(self.training.max)):
            raise ValueError(f"{self.name}: bounds are stricter than the training data")
        if not self.bounds.contains(self.example):
            raise ValueError(f"{self.name}: the example lies outside the bounds")
        if self.weight is not None and self.code_weights is not None:
            raise ValueError(f"{self.name}: a feature has a weight or code weights, not both")
        if self.code_weights is not None and (self.kind != "categorical" or sorted(self.code_weights) != sorted(self.codes or ())):
            raise ValueError(f"{self.name}: code weights belong to a categorical feature, one per code")

    @property
    def is_integral(self) -> bool:
        return self.codes is not None


@dataclass(frozen=True)
class CrossValidation:
    """Cross-validated quality of the chosen classifier."""

    cv_folds: int
    roc_auc_mean: float
    roc_auc_std: float
    accuracy_mean: float
    accuracy_std: float


@dataclass(frozen=True)
class Candidate:
    """A classifier the export compared by cross-validation."""

    classifier: str
    params: dict[str, int | float | str | bool | None]
    metrics: CrossValidation


ContributionMethod = Literal["linear", "additive trees", "none"]


@dataclass(frozen=True)
class Contributions:
    """Whether a prediction splits into exact per-feature contributions, and how: one value per
    feature in logit units of the positive class (the graph's ``output``, ``[N, features]``) that
    add up, with ``baseline`` (the score of the average training row), to the row's logit. They
    are the exact Shapley values with the training rows as background, for a model additive per
    feature (``method``); any other model has none (``method`` "none", ``why`` says why): an
    approximation is never served under this name."""

    method: ContributionMethod
    why: str  # how they are computed, or why there are none
    output: str | None = None
    baseline: float | None = None
    flag: str | None = None  # the graph's bool input that turns them on: false unless fed, a call that does not ask pays nothing

    def __post_init__(self) -> None:
        given = {self.output is not None, self.baseline is not None, self.flag is not None}
        if given != {self.method != "none"}:
            raise ValueError("contributions have an output, a baseline and a flag exactly when their method is not 'none'")


NO_CONTRIBUTIONS = Contributions("none", "the model was exported without contributions")


@dataclass(frozen=True)
class ModelCard:
    """Everything a user (or the service) needs to know about the served model."""

    name: str
    version: str
    description: str
    target: str
    classes: list[int]
    positive_class: int
    input_name: str
    label_output: str
    probability_output: str
    features: list[Feature]
    classifier: str
    classifier_params: dict[str, int | float | str | bool | None]
    metrics: CrossValidation
    training_data: dict[str, str | int]
    libraries: dict[str, str]
    created: str
    graph: Literal["folded", "converted"] = "converted"  # one linear classifier, or skl2onnx's conversion
    compared: list[Candidate] = field(default_factory=list)  # every candidate of the choice, the chosen one too
    class_labels: dict[int, str] | None = None  # what each class means (the spec's "classes"); answers keep the integer
    contributions: Contributions = NO_CONTRIBUTIONS
    sha256: str | None = field(default=None, compare=False)  # of the ONNX file as served; set on load

    def __post_init__(self) -> None:
        names = self.feature_names
        if len(set(names)) != len(names):
            raise ValueError("feature names must be unique")
        if len(set(self.classes)) != len(self.classes) or min(self.classes, default=-1) < 0:
            raise ValueError("classes must be distinct non-negative integers (the metrics count them by index)")
        if self.positive_class not in self.classes:
            raise ValueError("the positive class must be one of the classes")
        if self.target in ANSWER_KEYS or self.target in names:
            raise ValueError(f"the target {self.target!r} must differ from the features and from {list(ANSWER_KEYS)}")
        if self.class_labels is not None and sorted(self.class_labels) != sorted(self.classes):
            raise ValueError(f"class_labels must label each class, {sorted(self.classes)}, and no other; got {sorted(self.class_labels)}")

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def class_name(self, label: int) -> str:
        """A class as people read it: ``1 (benign)`` with a label, ``1`` without."""
        return f"{label} ({self.class_labels[label]})" if self.class_labels else str(label)

    def to_dict(self) -> dict[str, Any]:
        """The card as JSON-ready data (codes keyed by their string, as JSON objects are)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))  # type: ignore[no-any-return]

    def to_json(self) -> str:
        """What export embeds in the ONNX file: the card without the file's own sha256."""
        body = self.to_dict()
        del body["sha256"]
        return json.dumps(body)

    @classmethod
    def from_metadata(cls, metadata: dict[str, str], sha256: str | None = None) -> ModelCard:
        """Read the card from ONNX ``metadata_props``; raise ValueError when absent or invalid."""
        raw = metadata.get(CARD_METADATA_KEY)
        if raw is None:
            raise ValueError(f"the ONNX file carries no {CARD_METADATA_KEY!r} metadata")
        card = read_json(cls, json.loads(raw))
        return dataclasses.replace(card, sha256=sha256)


def legend(labels: dict[int, str]) -> str:
    """Integer codes (a feature's, the classes) with what each means: ``0 no, 1 yes``."""
    return ", ".join(f"{code} {label}" for code, label in labels.items())


def read_json(kind: Any, value: Any, where: str = "card") -> Any:
    """``value`` (parsed JSON) as ``kind``: a card dataclass, or one of the field types above.
    Raises ValueError naming the place (``card.features[3].bounds``) of the first problem."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if dataclasses.is_dataclass(kind):
        return read_dataclass(kind, value, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [option for option in args if option is not type(None)]
        if len(options) == 1:  # an optional field: keep the inner type's own message
            return read_json(options[0], value, where)
        for option in options:
            try:
                return read_json(option, value, where)
            except ValueError:
                continue
        raise ValueError(f"{where}: {value!r} is not {kind}")
    if origin is Literal:
        if value not in args:
            raise ValueError(f"{where}: {value!r} is not one of {list(args)}")
        return value
    if origin is list:
        expect(type(value) is list, where, value, "an array")
        return [read_json(args[0], item, f"{where}[{i}]") for i, item in enumerate(value)]
    if origin is dict:
        expect(type(value) is dict, where, value, "an object")
        key_type = int if args[0] is int else str
        return {read_key(key_type, k, where): read_json(args[1], v, f"{where}.{k}") for k, v in value.items()}
    if kind is float:
        expect(type(value) in (int, float), where, value, "a number")
        return float(value)
    expect(type(value) is kind or (kind is type(None) and value is None), where, value, getattr(kind, "__name__", str(kind)))
    return value


def read_dataclass(kind: Any, value: Any, where: str) -> Any:
    expect(type(value) is dict, where, value, "an object")
    hints = typing.get_type_hints(kind)
    given = {}
    for f in dataclasses.fields(kind):
        if f.name in value:
            given[f.name] = read_json(hints[f.name], value[f.name], f"{where}.{f.name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ValueError(f"{where}: missing {f.name!r}")
    try:
        return kind(**given)
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None


def read_key(kind: type, key: str, where: str) -> Any:
    if kind is int:
        expect(key.lstrip("-").isdigit(), where, key, "an integer key")
        return int(key)
    return key


def expect(holds: bool, where: str, value: Any, what: str) -> None:
    if not holds:
        raise ValueError(f"{where}: expected {what}, got {value!r}")
