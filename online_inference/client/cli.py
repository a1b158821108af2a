"""``python -m online_inference.client``: send a CSV to the service, write predictions.

The columns sent are the served model's features, read from its card (``GET /model``). Waits for
readiness (``--wait``), sends batches (``--batch-size``) with a progress bar on stderr, retries
connection errors and 503 with backoff (never sooner than the server's ``Retry-After``), exits
non-zero with the server's reason on 4xx, and when the CSV has the model's target column reports
the served model's accuracy, ROC AUC and confusion matrix (its classes with their labels, when
the card has them). Each probability is written with
the digits the server answered (never rounded).
``--explain`` sends the rows to ``/explain`` instead of ``/predict``: each CSV row gets, after the
predict columns, its three largest contributions by absolute value (``top1_feature``,
``top1_contribution``, ... ``top3_contribution``; logit units, the server's digits; empty cells when
fewer are non-zero), and JSON output keeps the whole answer row (contributions, baseline, reasons).
A model whose card says it has no contributions fails before any row is sent, with the card's why.

A service with API keys: ``--api-key KEY`` (or the environment variable ``HEART_API_KEY``; the flag
wins) is sent as ``Authorization: Bearer KEY`` on every request (``/health``, ``/model``,
``/predict``, ``/explain``); the key is never printed, not even in an error. A 401 (no key, or an
unknown one) or a 403 (a key outside the endpoint's group) exits non-zero at once with the server's
reason. A service with TLS (an ``https://`` URL): ``--cacert FILE`` verifies it against that CA
(default: the system's CAs), and ``--cert FILE --key FILE`` is the client certificate that mutual
TLS asks for; a certificate the client cannot verify, or a handshake the server refuses, fails at
once (never retried).
Needs only httpx (no numpy, no pandas); the card is read with the package's own card.py.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import Any

import httpx

from online_inference.card import ModelCard
from online_inference.client.errors import ClientError
from online_inference.client.report import TOP, Progress, summarize, write_predictions
from online_inference.client.service import EXPLAIN, KEY_ENV, PREDICT, InferenceClient
from online_inference.client.table import Table, read_table
from online_inference.client.tls import Tls

TOKEN = re.compile(r"[A-Za-z0-9._~+/-]+=*")  # what a Bearer token may hold (RFC 6750's b64token)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m online_inference.client", description=__doc__.splitlines()[0])
    parser.add_argument("csv", type=Path, help="a CSV with a column per feature of the served model (its target's too, for a summary)")
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="service base URL (default %(default)s)")
    parser.add_argument("--batch-size", type=int, default=100, help="rows per request (default %(default)s)")
    parser.add_argument("--output", type=Path, help="write predictions here (.csv or .json); default: stdout CSV")
    parser.add_argument("--wait", type=float, default=0.0, metavar="SECONDS", help="wait this long for /health 200")
    parser.add_argument("--retries", type=int, default=5, help="retries of connection errors and 503")
    parser.add_argument("--explain", action="store_true",
                        help=f"call {EXPLAIN}: add each row's {TOP} largest contributions (JSON: the whole answer row)")
    add_access_args(parser)
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error("--batch-size must be at least 1")
    check_access_args(parser, args)
    return args


def add_access_args(parser: argparse.ArgumentParser) -> None:
    access = parser.add_argument_group("API keys and TLS")
    access.add_argument("--api-key", metavar="KEY", default=None,
                        help=f"sent as 'Authorization: Bearer KEY' on every request (default: ${KEY_ENV})")
    access.add_argument("--cacert", type=Path, metavar="FILE", help="verify the https server against this PEM CA")
    access.add_argument("--cert", type=Path, metavar="FILE", help="client certificate (PEM) for mutual TLS")
    access.add_argument("--key", type=Path, metavar="FILE", help="the private key (PEM) of --cert, unless --cert holds it")


def check_access_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """The key (the flag, else the environment) and TLS files as the client can use them; an
    error never shows the key."""
    where = "--api-key" if args.api_key is not None else f"${KEY_ENV}"
    if args.api_key is None:
        args.api_key = os.environ.get(KEY_ENV) or None  # empty: no key
    if args.api_key is not None and not TOKEN.fullmatch(args.api_key):
        parser.error(f"the API key ({where}) is not a Bearer token: letters, digits and -._~+/ then any '='")
    if args.key is not None and args.cert is None:
        parser.error("--key needs --cert")
    if (args.cacert or args.cert) and not args.url.lower().startswith("https://"):
        parser.error("--cacert and --cert need an https:// --url")


def warn_plain_text(url: str, api_key: str | None) -> None:
    """Say so when the key would cross a network unencrypted (loopback is not one)."""
    host = httpx.URL(url).host
    if api_key and httpx.URL(url).scheme == "http" and host not in ("127.0.0.1", "::1", "localhost"):
        print(f"warning: the API key goes to {host} in plain text (http://): use https://", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    warn_plain_text(args.url, args.api_key)
    tls = Tls(args.cacert, args.cert, args.key)
    with InferenceClient(args.url, retries=args.retries, api_key=args.api_key, tls=tls) as client:
        if args.wait:
            client.wait_ready(args.wait)
        card = client.card()
        if args.explain and card.contributions.method == "none":
            raise ClientError(f"--explain: {card.name} {card.version} has no contributions: {card.contributions.why}")
        table = read_table(args.csv, card.feature_names, card.target)
        if not table.rows:
            raise ClientError(f"{args.csv}: no rows")
        progress = Progress(len(table.rows), enabled=len(table.rows) > args.batch_size)
        predictions = client.predict_all(table, args.batch_size, progress, EXPLAIN if args.explain else PREDICT)
    report(args, card, table, predictions)
    return 0


def report(args: argparse.Namespace, card: ModelCard, table: Table, predictions: list[dict[str, Any]]) -> None:
    """The predictions where ``--output`` says, and on stderr what was sent and, with labels, the summary."""
    write_predictions(args.output or Path("/dev/stdout"), predictions, card.target, args.explain)
    if args.output:
        print(f"wrote {len(predictions)} predictions to {args.output}", file=sys.stderr)
    print(f"{card.name} {card.version}: {len(predictions)} rows sent", file=sys.stderr)
    if table.labels is not None:
        print(summarize(table.labels, predictions, card), file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except ClientError as error:
        message = str(error).replace(args.api_key, "<API key>") if args.api_key else str(error)  # never the key
        print(f"error: {message}", file=sys.stderr)
        return 1
