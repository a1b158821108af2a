"""The 13 input features: order, kind, codes and plausible bounds, written once.

Training ranges and examples are measured from the data at export time; everything here ends up
in the model card, from which the service builds its validation.
"""

from __future__ import annotations

from dataclasses import dataclass

TARGET = "condition"


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    kind: str  # numeric | binary | categorical
    description: str
    unit: str | None = None
    codes: dict[int, str] | None = None
    # Plausible bounds for a real patient (never stricter than the training data); codes imply them.
    low: float | None = None
    high: float | None = None

    @property
    def bounds(self) -> tuple[float, float]:
        if self.codes:
            return float(min(self.codes)), float(max(self.codes))
        assert self.low is not None and self.high is not None
        return self.low, self.high


BINARY = {0: "no", 1: "yes"}

FEATURES: tuple[FeatureSpec, ...] = (
    FeatureSpec("age", "numeric", "Age", "years", low=18, high=110),
    FeatureSpec("sex", "binary", "Sex", codes={0: "female", 1: "male"}),
    FeatureSpec(
        "cp",
        "categorical",
        "Chest pain type",
        codes={0: "typical angina", 1: "atypical angina", 2: "non-anginal pain", 3: "asymptomatic"},
    ),
    FeatureSpec("trestbps", "numeric", "Resting blood pressure", "mm Hg", low=60, high=260),
    FeatureSpec("chol", "numeric", "Serum cholesterol", "mg/dl", low=80, high=700),
    FeatureSpec("fbs", "binary", "Fasting blood sugar > 120 mg/dl", codes=dict(BINARY)),
    FeatureSpec(
        "restecg",
        "categorical",
        "Resting electrocardiographic results",
        codes={0: "normal", 1: "ST-T wave abnormality", 2: "left ventricular hypertrophy"},
    ),
    FeatureSpec("thalach", "numeric", "Maximum heart rate achieved", "bpm", low=50, high=240),
    FeatureSpec("exang", "binary", "Exercise-induced angina", codes=dict(BINARY)),
    FeatureSpec(
        "oldpeak", "numeric", "ST depression induced by exercise relative to rest", "mm",
        low=-3, high=10,
    ),
    FeatureSpec(
        "slope",
        "categorical",
        "Slope of the peak exercise ST segment",
        codes={0: "upsloping", 1: "flat", 2: "downsloping"},
    ),
    FeatureSpec(
        "ca",
        "categorical",
        "Number of major vessels coloured by fluoroscopy",
        codes={0: "0", 1: "1", 2: "2", 3: "3"},
    ),
    FeatureSpec(
        "thal",
        "categorical",
        "Thallium stress test result",
        codes={0: "normal", 1: "fixed defect", 2: "reversible defect"},
    ),
)

FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)


def indices_of(kind: str) -> list[int]:
    """Column positions of the features of one kind, in training order."""
    return [i for i, f in enumerate(FEATURES) if f.kind == kind]
