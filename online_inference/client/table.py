"""The table the client sends: a CSV's feature columns in the served model's order, and its
target's column when it has one (for the summary); sent in batches."""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from online_inference.client.errors import ClientError


@dataclass
class Table:
    features: list[str]
    rows: list[list[float]]
    labels: list[int] | None  # the target's column, when the CSV has it


def number(text: str) -> float | int:
    value = float(text)
    return int(value) if value.is_integer() else value


def read_table(path: Path, features: Sequence[str], target: str) -> Table:
    """The CSV's feature columns in the model's order (other columns, such as the target, are not sent)."""
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        missing = [f for f in features if f not in columns]
        if missing:
            raise ClientError(f"{path}: missing columns {missing}")
        records = list(reader)
    rows = [[number(r[f]) for f in features] for r in records]
    labels = [int(float(r[target])) for r in records] if target in columns else None
    return Table(list(features), rows, labels)


def batches(rows: list[list[float]], size: int) -> Iterator[list[list[float]]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]
