"""What the client shows: a progress bar while it sends, the predictions written (CSV or JSON),
and, when the table has labels, the served model's accuracy, ROC AUC and confusion matrix."""

from __future__ import annotations

import csv
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from online_inference.card import ModelCard

TOP = 3  # the largest contributions a CSV row of --explain shows


def roc_auc(labels: Sequence[int], scores: Sequence[float]) -> float:
    """Mann–Whitney AUC with tied scores counted half."""
    ranked = sorted(zip(scores, labels))
    positives = sum(labels)
    negatives = len(labels) - positives
    if not positives or not negatives:
        return float("nan")
    rank_sum, i = 0.0, 0
    while i < len(ranked):
        j = i
        while j < len(ranked) and ranked[j][0] == ranked[i][0]:
            j += 1
        average_rank = (i + j + 1) / 2  # ranks are 1-based
        rank_sum += average_rank * sum(label for _, label in ranked[i:j])
        i = j
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


class Progress:
    """A one-line progress bar on stderr, shown only for multi-batch work."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.done, self.enabled = total, 0, enabled
        self.started = time.monotonic()

    def advance(self, rows: int) -> None:
        self.done += rows
        if self.enabled:
            width = 30
            filled = int(width * self.done / self.total)
            rate = self.done / max(time.monotonic() - self.started, 1e-9)
            sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} rows ({rate:,.0f} rows/s)")
            if self.done >= self.total:
                sys.stderr.write("\n")
            sys.stderr.flush()


def top_contributions(contributions: dict[str, float], count: int = TOP) -> list[Any]:
    """``feature, contribution`` cells of the ``count`` largest by absolute value (ties in the
    card's order), none that is zero; empty cells for the rest."""
    largest = sorted((item for item in contributions.items() if item[1]), key=lambda item: -abs(item[1]))[:count]
    return [cell for item in largest for cell in item] + [""] * 2 * (count - len(largest))


def write_predictions(path: Path, predictions: list[dict[str, Any]], target: str, explain: bool = False) -> None:
    """JSON: the answer rows as the server gave them; CSV: a line a row, with ``--explain``'s top
    contributions after the predict columns."""
    if path.suffix.lower() == ".json":
        path.write_text(json.dumps(predictions, indent=1) + "\n")
        return
    top = [f"top{k}_{cell}" for k in range(1, TOP + 1) for cell in ("feature", "contribution")] if explain else []
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["row", target, "probability", "warnings", *top])
        for i, p in enumerate(predictions):
            extra = top_contributions(p["contributions"]) if explain else []
            writer.writerow([i, p[target], p["probability"], "; ".join(p["warnings"]), *extra])


def summarize(labels: list[int], predictions: list[dict[str, Any]], card: ModelCard) -> str:
    """Accuracy, ROC AUC and the confusion matrix of the answers against the table's labels (each
    class named with its label, when the card has them)."""
    target, classes = card.target, card.classes
    predicted = [p[target] for p in predictions]
    accuracy = sum(int(a == b) for a, b in zip(labels, predicted)) / len(labels)
    auc = roc_auc([int(label == card.positive_class) for label in labels], [p["probability"] for p in predictions])
    counts = {(actual, guess): 0 for actual in classes for guess in classes}
    for actual, guess in zip(labels, predicted):
        counts[actual, guess] = counts.get((actual, guess), 0) + 1
    names = {c: card.class_name(c) for c in classes}
    width = max(len(f"{target} {name}") for name in names.values()) + 2
    return "\n".join([
        f"accuracy {accuracy:.4f}, ROC AUC {auc:.4f} on {len(labels)} labelled rows",
        " " * width + "".join(f"  predicted {names[c]}" for c in classes),
        *(f"  {f'{target} {names[a]}':<{width - 2}}" + "".join(f"  {counts[a, g]:>{len(f'predicted {names[g]}')}}" for g in classes)
          for a in classes),
    ])
