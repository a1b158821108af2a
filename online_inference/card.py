"""The model card: the one description of the model that export writes and the service reads.

The card travels inside the ONNX file (``metadata_props["model_card"]``), so the sha256 of the file
covers both the graph and the card.  Everything the service validates or documents (feature order,
kinds, codes, bounds, examples) comes from here and is written nowhere else.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

CARD_METADATA_KEY = "model_card"

FeatureKind = Literal["numeric", "binary", "categorical"]


class Range(BaseModel):
    """A closed interval ``[min, max]``."""

    model_config = ConfigDict(frozen=True)

    min: float
    max: float

    @model_validator(mode="after")
    def check_order(self) -> Range:
        if self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        return self

    def contains(self, value: float) -> bool:
        return self.min <= value <= self.max


class Feature(BaseModel):
    """One input column, in the order the model takes it."""

    model_config = ConfigDict(frozen=True)

    name: str
    kind: FeatureKind
    description: str
    unit: str | None = None
    codes: dict[int, str] | None = Field(
        default=None, description="Allowed integer codes and their meaning (binary / categorical)."
    )
    bounds: Range = Field(description="Plausible values: anything outside is rejected with 400.")
    training: Range = Field(description="Range seen in training: outside it a prediction warns.")
    example: float = Field(description="A typical value, used in the OpenAPI examples.")

    @model_validator(mode="after")
    def check_consistency(self) -> Feature:
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
        return self

    @property
    def is_integral(self) -> bool:
        return self.codes is not None


class Metrics(BaseModel):
    """Cross-validated quality of the chosen classifier."""

    cv_folds: int
    roc_auc_mean: float
    roc_auc_std: float
    accuracy_mean: float
    accuracy_std: float


class ModelCard(BaseModel):
    """Everything a user (or the service) needs to know about the served model."""

    name: str
    version: str
    sha256: str | None = Field(
        default=None,
        description="sha256 of the ONNX file as served; filled in when the file is loaded.",
    )
    description: str
    target: str
    classes: list[int]
    positive_class: int
    input_name: str
    label_output: str
    probability_output: str
    features: list[Feature]
    classifier: str
    classifier_params: dict[str, float | int | str | bool | None]
    metrics: Metrics
    training_data: dict[str, str | int]
    libraries: dict[str, str]
    created: str

    @model_validator(mode="after")
    def check_features(self) -> ModelCard:
        names = [f.name for f in self.features]
        if len(set(names)) != len(names):
            raise ValueError("feature names must be unique")
        if self.positive_class not in self.classes:
            raise ValueError("the positive class must be one of the classes")
        return self

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def to_json(self) -> str:
        return self.model_dump_json(exclude={"sha256"})

    @classmethod
    def from_metadata(cls, metadata: dict[str, str], sha256: str | None = None) -> ModelCard:
        """Read the card from ONNX ``metadata_props``; raise ValueError when absent or invalid."""
        raw = metadata.get(CARD_METADATA_KEY)
        if raw is None:
            raise ValueError(f"the ONNX file carries no {CARD_METADATA_KEY!r} metadata")
        card = cls.model_validate(json.loads(raw))
        return card.model_copy(update={"sha256": sha256})
