"""Spec: a long export says where it is: on a terminal a bar of candidates × folds redrawn after
each fold, and on any stream a line per candidate as it finishes, with the bar, its scores and
its time; the command prints the total time, and under ``--quiet`` no progress at all."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from online_inference.card import Candidate, CrossValidation
from online_inference.export.__main__ import main as export_main
from online_inference.export.progress import ProgressBar, clock
from online_inference.export.spec import HEART_SPEC
from online_inference.export.train import CANDIDATES, CV_FOLDS

METRICS = CrossValidation(cv_folds=2, roc_auc_mean=0.9, roc_auc_std=0.01, accuracy_mean=0.8, accuracy_std=0.02)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def run_two_candidates(stream: io.StringIO) -> None:
    progress = ProgressBar(4, stream)
    for C in (0.1, 1.0):
        progress.started("LogisticRegression", {"C": C})
        progress.fold_done()
        progress.fold_done()
        progress.scored(Candidate(classifier="LogisticRegression", params={"C": C}, metrics=METRICS))


def test_on_a_file_each_candidate_gets_one_line_with_the_bar_and_its_scores() -> None:
    stream = io.StringIO()
    run_two_candidates(stream)
    lines = stream.getvalue().splitlines()
    assert [line.split("  ")[0] for line in lines] == ["[##########..........] 2/4 folds", "[####################] 4/4 folds"]
    assert "LogisticRegression(C=0.1): ROC AUC 0.9000 ± 0.0100, accuracy 0.8000 ± 0.0200 (" in lines[0]
    assert "\r" not in stream.getvalue()


def test_on_a_terminal_the_bar_is_redrawn_after_each_fold() -> None:
    stream = Terminal()
    run_two_candidates(stream)
    redrawn = [part for part in stream.getvalue().split("\r") if part.endswith("...\x1b[K")]
    assert len(redrawn) == 2 + 4  # each start and each fold
    assert " 1/4 folds" in redrawn[1] and "LogisticRegression(C=0.1) ..." in redrawn[1]
    assert stream.getvalue().count("\n") == 2


def test_the_clock_reads_minutes_and_seconds_then_hours() -> None:
    assert [clock(s) for s in (0, 61.9, 3600 + 62)] == ["0:00", "1:01", "1:01:02"]


@pytest.mark.parametrize("quiet", [False, True])
def test_the_command_prints_its_progress_unless_quiet_and_its_time(quiet: bool, kaggle_csv: Path, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--data", str(kaggle_csv), "--spec", str(HEART_SPEC), "--output", str(tmp_path / "model.onnx")]
    assert export_main(argv + ["--quiet"] * quiet) == 0
    printed = capsys.readouterr()
    candidates = [line for line in printed.err.splitlines() if "folds" in line]
    assert len(candidates) == (0 if quiet else len(CANDIDATES))
    assert quiet or candidates[-1].startswith(f"[####################] {len(CANDIDATES) * CV_FOLDS}/{len(CANDIDATES) * CV_FOLDS} folds")
    assert "took " in printed.out and "training " in printed.out
