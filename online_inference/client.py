"""``python -m online_inference.client``: send a CSV to the service, write predictions.

The columns sent are the served model's features, read from its card (``GET /model``). Waits for
readiness (``--wait``), sends batches (``--batch-size``) with a progress bar on stderr, retries
connection errors and 503 with backoff, exits non-zero with the server's reason on 4xx, and when
the CSV has the model's target column reports the served model's accuracy, ROC AUC and confusion
matrix (its classes with their labels, when the card has them). Each probability is written with
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
import csv
import json
import os
import re
import ssl
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from online_inference.card import ModelCard, read_json

RETRY_STATUSES = {502, 503, 504}
KEY_ENV = "HEART_API_KEY"
REFUSED = {401: f" (give an API key of its group: --api-key or {KEY_ENV})", 403: ""}  # the server's reason says the group
TOKEN = re.compile(r"[A-Za-z0-9._~+/-]+=*")  # what a Bearer token may hold (RFC 6750's b64token)
PREDICT, EXPLAIN = "/predict", "/explain"
TOP = 3  # the largest contributions a CSV row of --explain shows


class ClientError(Exception):
    """The request cannot succeed as sent (4xx) or the server stayed unavailable."""


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


@dataclass(frozen=True)
class Tls:
    """How the client checks the server (``cacert``: its CA; None: the system's) and, for mutual
    TLS, its own certificate (``key``: None when the certificate's file holds the key too)."""

    cacert: Path | None = None
    cert: Path | None = None
    key: Path | None = None

    def verify(self) -> ssl.SSLContext | bool:
        """What httpx verifies the server with: its default, or a context with these files."""
        if self.cacert is None and self.cert is None:
            return True
        try:
            context = ssl.create_default_context(cafile=self.cacert)
            if self.cert is not None:
                context.load_cert_chain(self.cert, self.key)
        except (OSError, ssl.SSLError) as error:  # a missing file; no PEM, or a key that is not the certificate's
            raise ClientError(f"TLS files {self.describe()}: {getattr(error, 'reason', None) or error}") from None
        return context

    def describe(self) -> str:
        return ", ".join(f"--{name} {path}" for name, path in vars(self).items() if path is not None)


def tls_failure(error: BaseException) -> bool:
    """Whether ``error`` is a TLS failure (a certificate not verified, a handshake refused): another
    try would fail the same way. A connection that ended mid-handshake (a restarting server) is not one."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, ssl.SSLError):
            return not isinstance(cause, (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError))
        cause = cause.__cause__ or cause.__context__
    return False


class InferenceClient:
    def __init__(self, url: str, retries: int = 5, backoff: float = 0.2, timeout: float = 30.0,
                 api_key: str | None = None, tls: Tls = Tls(), transport: httpx.BaseTransport | None = None):
        """``api_key``: sent as ``Authorization: Bearer`` on every request; ``transport``: httpx's
        (tests)."""
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=url.rstrip("/"), timeout=timeout, headers=headers, verify=tls.verify(),
                                 transport=transport)
        self.retries = retries
        self.backoff = backoff
        # A server that asks for a client certificate may just close a connection without one (TLS 1.3)
        self.hint = " (if the server asks for a client certificate: --cert and --key)" \
            if self.http.base_url.scheme == "https" and tls.cert is None else ""

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Retries connection errors and 502/503/504 with exponential backoff; raises on 4xx and
        on a TLS failure."""
        delay = self.backoff
        for attempt in range(self.retries + 1):
            try:
                response = self.http.request(method, path, **kwargs)
            except httpx.TransportError as error:
                problem = self.transport_problem(method, path, error)
            else:
                if response.status_code not in RETRY_STATUSES:
                    break
                problem = f"HTTP {response.status_code}: {reason(response)}"
            if attempt == self.retries:
                raise ClientError(f"{method} {path} failed after {self.retries + 1} attempts: {problem}")
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
        if response.status_code >= 400:
            raise ClientError(refusal(method, path, response))
        return response

    def __enter__(self) -> InferenceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()  # its connections too: a server waits for an idle one at its stop

    def transport_problem(self, method: str, path: str, error: httpx.TransportError) -> str:
        """What went wrong, for a later try; a TLS failure raises at once (it would fail again)."""
        problem = f"{type(error).__name__}: {error}"
        if tls_failure(error):
            raise ClientError(f"{method} {path}: TLS: {problem}") from None
        return problem + self.hint

    def wait_ready(self, seconds: float) -> dict[str, Any]:
        """Poll ``/health`` until 200; a failed model ends the wait at once."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                response = self.http.get("/health")
                if response.status_code in REFUSED:
                    raise ClientError(refusal("GET", "/health", response))
                body = response.json()
                if response.status_code == 200:
                    return body  # type: ignore[no-any-return]
                if body.get("status") == "failed":
                    raise ClientError(f"model failed to load: {body.get('reason')}")
                problem = f"status {body.get('status')}"
            except httpx.TransportError as error:
                problem = self.transport_problem("GET", "/health", error)
            except ValueError as error:
                problem = f"{type(error).__name__}: {error}"
            if time.monotonic() >= deadline:
                raise ClientError(f"service not ready after {seconds:g}s ({problem})")
            time.sleep(0.2)

    def card(self) -> ModelCard:
        try:
            return read_json(ModelCard, self.request("GET", "/model").json())  # type: ignore[no-any-return]
        except ValueError as error:
            raise ClientError(f"GET /model: not a model card: {error}") from None

    def predict(self, features: list[str], rows: list[list[float]], endpoint: str = PREDICT) -> list[dict[str, Any]]:
        """The answer rows of ``endpoint`` (``/predict`` or ``/explain``: the same body)."""
        response = self.request("POST", endpoint, json={"features": features, "data": rows})
        return response.json()["predictions"]  # type: ignore[no-any-return]

    def predict_all(self, table: Table, batch_size: int, progress: Progress, endpoint: str = PREDICT) -> list[dict[str, Any]]:
        predictions: list[dict[str, Any]] = []
        for batch in batches(table.rows, batch_size):
            predictions.extend(self.predict(table.features, batch, endpoint))
            progress.advance(len(batch))
        return predictions


def refusal(method: str, path: str, response: httpx.Response) -> str:
    """A 4xx's message: the status, the server's reason and, for a 401, how to give a key."""
    return f"{method} {path}: HTTP {response.status_code}: {reason(response)}{REFUSED.get(response.status_code, '')}"


def reason(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500]
    if isinstance(body, dict) and "error" in body:
        problems = body.get("problems") or []
        details = "; ".join(
            f"row {p.get('row')} {p.get('feature') or ''}: {p['reason']}".replace(" None", "") for p in problems[:10]
        )
        more = f" (+{len(problems) - 10} more)" if len(problems) > 10 else ""
        return f"{body['error']}" + (f": {details}{more}" if details else "")
    return json.dumps(body)[:500]


def batches(rows: list[list[float]], size: int) -> Iterator[list[list[float]]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


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


if __name__ == "__main__":
    sys.exit(main())
