"""Where a long export is: a bar of candidates × folds on stderr (redrawn in place on a terminal),
each candidate's scores as it finishes, and the time taken. ``--quiet`` (and a caller of
:func:`train.train` that passes nothing, as the tests do) gets :data:`SILENT`."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from online_inference.card import Candidate

BAR_WIDTH = 20


def clock(seconds: float) -> str:
    """``m:ss`` (``h:mm:ss`` past an hour)."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def candidate_name(classifier: str, params: dict[str, Any]) -> str:
    return f"{classifier}({', '.join(f'{k}={v}' for k, v in params.items())})"


class Progress:
    """Told of each candidate's start, each fold's end and each candidate's scores; says nothing."""

    def started(self, classifier: str, params: dict[str, Any]) -> None:
        """A candidate's cross-validation starts."""

    def fold_done(self) -> None:
        """One more fold is fitted and scored."""

    def scored(self, candidate: Candidate) -> None:
        """A candidate's folds are all done."""


SILENT = Progress()


class ProgressBar(Progress):
    """``[#####...............]  10/45 folds  0:03  LogisticRegression(C=0.3, ...)``: redrawn after each
    fold when ``stream`` is a terminal; a line that stays, with the candidate's scores and time, as
    each candidate finishes (the only lines when ``stream`` is a file or a pipe)."""

    def __init__(self, folds: int, stream: TextIO | None = None):
        self.folds, self.done, self.stream = folds, 0, stream or sys.stderr  # by default, the stderr of the moment
        self.live = self.stream.isatty()
        self.start = self.candidate_start = time.monotonic()
        self.current = ""

    def bar(self) -> str:
        filled = BAR_WIDTH * self.done // self.folds
        count = f"{self.done:>{len(str(self.folds))}}/{self.folds} folds"
        return f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {count}  {clock(time.monotonic() - self.start)}"

    def redraw(self) -> None:
        if self.live:
            self.stream.write(f"\r{self.bar()}  {self.current} ...\x1b[K")
            self.stream.flush()

    def started(self, classifier: str, params: dict[str, Any]) -> None:
        self.current, self.candidate_start = candidate_name(classifier, params), time.monotonic()
        self.redraw()

    def fold_done(self) -> None:
        self.done += 1
        self.redraw()

    def scored(self, candidate: Candidate) -> None:
        m = candidate.metrics
        line = (f"{self.bar()}  {candidate_name(candidate.classifier, candidate.params)}: ROC AUC {m.roc_auc_mean:.4f} "
                f"± {m.roc_auc_std:.4f}, accuracy {m.accuracy_mean:.4f} ± {m.accuracy_std:.4f} "
                f"({time.monotonic() - self.candidate_start:.1f} s)")
        self.stream.write(f"\r{line}\x1b[K\n" if self.live else f"{line}\n")
        self.stream.flush()
