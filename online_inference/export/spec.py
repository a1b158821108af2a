"""The feature spec: the one model-specific input of an export (a JSON file beside its table).

It names the model and its target (and, optionally, what each of the target's two classes means:
``classes``, as codes have labels; answers keep the integer class), and lists the features in the
order the model takes them, each with its kind, meaning and either plausible bounds (numeric) or
integer codes (binary, categorical). Training ranges and examples are measured from the table;
everything ends up in the model card, from which the service builds its validation,
documentation and answers.

    {"name": "toy-risk-classifier", "version": "0.1.0", "description": "...", "target": "outcome",
     "classes": {"0": "low risk", "1": "high risk"},
     "features": [
       {"name": "age", "kind": "numeric", "meaning": "Age", "unit": "years", "bounds": [18, 110]},
       {"name": "smoker", "kind": "binary", "meaning": "Smokes", "codes": {"0": "no", "1": "yes"}}]}

The heart model's spec is ``online_inference/data/heart.spec.json``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from online_inference.card import ANSWER_KEYS, FeatureKind, read_json

HEART_SPEC = Path(__file__).resolve().parents[1] / "data" / "heart.spec.json"


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    kind: FeatureKind
    meaning: str
    bounds: list[float] | None = None  # [low, high]: plausible values of a numeric feature
    codes: dict[int, str] | None = None  # binary and categorical: each integer code and its meaning
    unit: str | None = None

    def __post_init__(self) -> None:
        if self.kind == "numeric":
            if self.codes is not None or self.bounds is None:
                raise ValueError(f"{self.name}: a numeric feature has bounds [low, high] and no codes")
            if len(self.bounds) != 2 or not all(math.isfinite(b) for b in self.bounds) or self.bounds[0] > self.bounds[1]:
                raise ValueError(f"{self.name}: bounds must be [low, high] with finite low <= high, got {self.bounds}")
            return
        if self.bounds is not None or not self.codes:
            raise ValueError(f"{self.name}: a {self.kind} feature has codes and no bounds (its codes bound it)")
        if sorted(self.codes) != list(range(min(self.codes), max(self.codes) + 1)):
            raise ValueError(f"{self.name}: codes must be consecutive integers, got {sorted(self.codes)}")
        if self.kind == "binary" and len(self.codes) != 2:
            raise ValueError(f"{self.name}: a binary feature has exactly two codes, got {sorted(self.codes)}")

    @property
    def low_high(self) -> tuple[float, float]:
        if self.codes:
            return float(min(self.codes)), float(max(self.codes))
        assert self.bounds is not None  # __post_init__: a numeric feature has bounds
        return float(self.bounds[0]), float(self.bounds[1])

    def problem_with(self, value: float) -> str | None:
        """Why ``value`` cannot be this feature's (None if it can)."""
        if not math.isfinite(value):
            return f"{value!r} is not a finite number"
        if self.codes:
            return None if value.is_integer() and int(value) in self.codes else f"{value:g} is not one of the codes {sorted(self.codes)}"
        low, high = self.low_high
        return None if low <= value <= high else f"{value:g} is outside the bounds [{low:g}, {high:g}]"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    version: str
    description: str
    target: str
    features: list[FeatureSpec]
    classes: dict[int, str] | None = None  # the target's two classes, each with what it means

    def __post_init__(self) -> None:
        names = self.feature_names
        if not names:
            raise ValueError("a model needs at least one feature")
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"feature names must be unique, repeated: {repeated}")
        if self.target in names:
            raise ValueError(f"the target {self.target!r} is also a feature")
        if self.target in ANSWER_KEYS:
            raise ValueError(f"the target cannot be named {self.target!r}: an answer has that key beside the target's")
        if self.classes is not None:
            self.check_classes(self.classes)

    @staticmethod
    def check_classes(classes: dict[int, str]) -> None:
        """The target's labels: two integer classes >= 0, each with its own, non-empty label."""
        labels = [label.strip() for label in classes.values()]
        if len(classes) != 2 or min(classes) < 0:
            raise ValueError(f"classes: the target has two integer classes >= 0, got {sorted(classes)}")
        if not all(labels) or len(set(labels)) != len(labels):
            raise ValueError(f"classes: each class needs its own label, got {list(classes.values())}")

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def indices_of(self, kind: str) -> list[int]:
        """Column positions of the features of one kind, in the model's order."""
        return [i for i, f in enumerate(self.features) if f.kind == kind]


def load_spec(path: Path) -> ModelSpec:
    """The spec in ``path``; ValueError naming the file and the place of the first problem."""
    try:
        return read_json(ModelSpec, json.loads(path.read_text()), where="spec")  # type: ignore[no-any-return]
    except (ValueError, OSError) as error:
        raise ValueError(f"{path}: {error}") from None
