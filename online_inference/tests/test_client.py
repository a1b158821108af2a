"""Spec: the client sends a Kaggle-format CSV in batches, writes predictions equal to the model's,
reports accuracy and ROC AUC when ``condition`` is present, waits for readiness, retries 503 and
connection errors (never sooner than the server's ``Retry-After``), and exits non-zero with the server's reason on 4xx. Its CSV keeps each
probability's digits as the server answered them; its confusion matrix names each class with its
label when the card has them. With ``--explain`` it calls ``/explain``: each CSV row adds the
server's three largest contributions (its digits), JSON keeps the whole answer row, the summary
is the same, and a model whose card has no contributions fails before any row is sent, with the
card's reason (a 501 of ``/explain`` is not retried).

Against a service with API keys, the key (``--api-key``, else ``HEART_API_KEY``; the flag wins)
goes as ``Authorization: Bearer`` on every request; no key, an unknown one or one outside the
endpoint's group exits non-zero at once with the server's reason, and the key is printed nowhere.
Against HTTPS, ``--cacert`` verifies the service (without it, the test CA's certificate is refused
at once), and ``--cert``/``--key`` pass mutual TLS (without them the handshake fails). The
certificates are made at test time with Debian's ``openssl`` (tests/certs.py)."""

from __future__ import annotations

import ast
import csv
import datetime
import email.utils
import hashlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from online_inference.app.model.session import ModelSession
from online_inference.app.settings import Settings
from online_inference.card import NO_CONTRIBUTIONS
import online_inference.client
from online_inference.client.cli import main as client_main
from online_inference.client.cli import warn_plain_text
from online_inference.client.errors import ClientError
from online_inference.client.report import roc_auc, write_predictions
from online_inference.client.service import EXPLAIN, JITTER, KEY_ENV, PREDICT, InferenceClient, retry_after
from online_inference.export.data import load_kaggle_csv
from online_inference.docker.dockercli import free_port
from online_inference.tests.certs import Pki, tls_server
from online_inference.tests.helpers import (bundled_card, bundled_session, bundled_session_with, live_server,
                                            metric_value)
from online_inference.devtools.api_key import new_key

TOP_COLUMNS = [f"top{k}_{cell}" for k in (1, 2, 3) for cell in ("feature", "contribution")]


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    with live_server() as url:
        yield url


def test_client_predicts_the_kaggle_csv_like_the_model(
    server_url: str, kaggle_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "predictions.csv"
    assert client_main([str(kaggle_csv), "--url", server_url, "--batch-size", "64", "--output", str(output)]) == 0
    with output.open() as handle:
        rows = list(csv.DictReader(handle))
    data = load_kaggle_csv(kaggle_csv)
    expected = bundled_session().run(data.X.astype(np.float32))
    assert [int(r["condition"]) for r in rows] == expected.labels.tolist()
    assert np.array([float(r["probability"]) for r in rows], dtype=np.float32).tobytes() == expected.positive.tobytes()
    err = capsys.readouterr().err
    assert "297/297 rows" in err  # the progress bar of a multi-batch file
    assert "297 rows sent" in err and "accuracy" in err and "ROC AUC" in err
    counts = [[int(n) for n in line.split()[2:]] for line in err.splitlines() if line.startswith("  condition ")]
    actual = data.y.tolist()
    assert counts == [[sum(1 for a, p in zip(actual, expected.labels) if (a, p) == (row, column)) for column in (0, 1)]
                      for row in (0, 1)]


def test_the_confusion_matrix_names_the_classes_with_the_cards_labels(
    kaggle_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with live_server(loader=lambda: bundled_session_with(class_labels={0: "no disease", 1: "disease"})) as url:
        assert client_main([str(kaggle_csv), "--url", url, "--batch-size", "1000", "--output", str(tmp_path / "p.csv")]) == 0
    lines = capsys.readouterr().err.splitlines()
    (header,) = [line for line in lines if "predicted" in line]
    assert header.split() == ["predicted", "0", "(no", "disease)", "predicted", "1", "(disease)"]
    rows = [line for line in lines if line.startswith("  condition ")]
    assert [row.split(")")[0] for row in rows] == ["  condition 0 (no disease", "  condition 1 (disease"]
    data = load_kaggle_csv(kaggle_csv)
    expected = bundled_session().run(data.X.astype(np.float32)).labels.tolist()
    assert [[int(n) for n in row.split()[-2:]] for row in rows] == [
        [sum(1 for a, p in zip(data.y.tolist(), expected) if (a, p) == (actual, guess)) for guess in (0, 1)] for actual in (0, 1)]


def test_a_model_answer_that_is_not_a_card_is_a_client_error_with_the_reason() -> None:
    client = InferenceClient("http://model.test")
    client.http = httpx.Client(base_url="http://model.test", transport=httpx.MockTransport(
        lambda request: httpx.Response(200, json={"name": "m", "features": "none"})))
    with pytest.raises(ClientError, match="GET /model: not a model card: card: missing 'version'"):
        client.card()


def test_json_output(server_url: str, kaggle_csv: Path, tmp_path: Path) -> None:
    output = tmp_path / "predictions.json"
    assert client_main([str(kaggle_csv), "--url", server_url, "--batch-size", "1000", "--output", str(output)]) == 0
    predictions = json.loads(output.read_text())
    assert len(predictions) == 297 and set(predictions[0]) == {"condition", "probability", "warnings"}


def test_4xx_exits_non_zero_with_the_servers_reason(
    server_url: str, kaggle_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.csv"
    text = kaggle_csv.read_text().splitlines()
    header, first = text[0], text[1].split(",")
    first[header.split(",").index("cp")] = "7"
    bad.write_text("\n".join([header, ",".join(first)]) + "\n")
    assert client_main([str(bad), "--url", server_url, "--output", str(tmp_path / "out.csv")]) == 1
    err = capsys.readouterr().err
    assert "HTTP 400" in err and "cp" in err and "not one of the codes" in err


def test_waits_for_a_loading_model_then_predicts(kaggle_csv: Path, tmp_path: Path) -> None:
    release = threading.Event()

    def slow_loader() -> ModelSession:
        release.wait(10)
        return bundled_session()

    with live_server(loader=slow_loader, ready_path=None) as url:
        threading.Timer(0.5, release.set).start()
        assert client_main([str(kaggle_csv), "--url", url, "--wait", "10", "--output", str(tmp_path / "o.csv")]) == 0


def test_unreachable_server_fails_after_retries(kaggle_csv: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert client_main([str(kaggle_csv), "--url", url, "--retries", "1"]) == 1
    assert "failed after 2 attempts" in capsys.readouterr().err


def test_the_csv_keeps_the_digits_the_server_answered(tmp_path: Path) -> None:
    answered = [0.0, 3e-7, 0.4147306, 0.99999994, 1.0]  # as the server writes them: never rounded to 0 or 1
    output = tmp_path / "predictions.csv"
    write_predictions(output, [{"condition": 0, "probability": p, "warnings": []} for p in answered], "condition")
    with output.open() as handle:
        written = [row["probability"] for row in csv.DictReader(handle)]
    assert [float(text) for text in written] == answered and written[1:4] == ["3e-07", "0.4147306", "0.99999994"]


def test_the_client_imports_nothing_of_the_service_but_the_card() -> None:
    """It runs where the service does not (a laptop with httpx): ``card.py`` is all it shares."""
    package = Path(online_inference.client.__file__).parent
    shared = {node.module for path in package.glob("*.py") for node in ast.walk(ast.parse(path.read_text()))
              if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("online_inference.")
              and not node.module.startswith("online_inference.client.")}
    assert shared == {"online_inference.card"}


def test_roc_auc_counts_ties_half() -> None:
    assert roc_auc([0, 1], [0.1, 0.9]) == 1.0
    assert roc_auc([0, 1], [0.9, 0.1]) == 0.0
    assert roc_auc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == 0.5


def server_explanations(url: str, csv_path: Path, parse_float: type = float) -> list[dict[str, Any]]:
    """The service's own /explain answer rows for the whole CSV in one request (``parse_float=str``:
    each number as the text it wrote)."""
    body = {"features": bundled_card().feature_names, "data": load_kaggle_csv(csv_path).X.tolist()}
    response = httpx.post(url + EXPLAIN, json=body)
    assert response.status_code == 200, response.text
    return json.loads(response.text, parse_float=parse_float)["predictions"]  # type: ignore[no-any-return]


def largest_three(contributions: dict[str, str]) -> list[str]:
    """feature, contribution text of the three largest by size (ties in the card's order), empty
    cells past the non-zero ones."""
    non_zero = [(name, text) for name, text in contributions.items() if float(text)]
    ranked = sorted(non_zero, key=lambda item: -abs(float(item[1])))[:3]
    cells = [cell for item in ranked for cell in item]
    return cells + [""] * (6 - len(cells))


def client_csv(args: list[str], output: Path) -> list[dict[str, str]]:
    assert client_main([*args, "--output", str(output)]) == 0
    with output.open() as handle:
        return list(csv.DictReader(handle))


def test_explain_adds_each_rows_three_largest_contributions_as_the_server_answered_them(
    server_url: str, kaggle_csv: Path, tmp_path: Path
) -> None:
    predicted = client_csv([str(kaggle_csv), "--url", server_url, "--batch-size", "64"], tmp_path / "p.csv")
    explained = client_csv([str(kaggle_csv), "--url", server_url, "--batch-size", "64", "--explain"], tmp_path / "e.csv")
    assert list(explained[0]) == [*predicted[0], *TOP_COLUMNS]
    assert [{k: r[k] for k in predicted[0]} for r in explained] == predicted  # the predict columns, unchanged
    expected = [largest_three(row["contributions"]) for row in server_explanations(server_url, kaggle_csv, str)]
    written = [[r[c] for c in TOP_COLUMNS] for r in explained]
    assert [[r[0], r[2], r[4]] for r in written] == [[e[0], e[2], e[4]] for e in expected]
    assert [[float(t) if t else t for t in r[1::2]] for r in written] == [[float(t) if t else t for t in e[1::2]] for e in expected]
    assert all(r[1] == repr(float(e[1])) for r, e in zip(written, expected))  # the server's digits, never rounded
    assert len(set(map(tuple, written))) > 1  # the rows differ: each row's own contributions


def test_explain_keeps_the_summary(server_url: str, kaggle_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    summaries = []
    for extra in ([], ["--explain"]):
        client_csv([str(kaggle_csv), "--url", server_url, "--batch-size", "1000", *extra], tmp_path / "o.csv")
        err = capsys.readouterr().err
        summaries.append([line for line in err.splitlines() if "accuracy" in line or "predicted" in line or "  condition " in line])
    assert summaries[0] == summaries[1] and len(summaries[1]) == 4 and "ROC AUC" in summaries[1][0]


def test_explain_json_keeps_the_whole_answer_row(server_url: str, kaggle_csv: Path, tmp_path: Path) -> None:
    output = tmp_path / "explanations.json"
    assert client_main([str(kaggle_csv), "--url", server_url, "--batch-size", "100", "--explain", "--output", str(output)]) == 0
    rows = json.loads(output.read_text())
    assert set(rows[0]) == {"condition", "probability", "warnings", "baseline", "contributions", "reasons"}
    assert rows == server_explanations(server_url, kaggle_csv)


def test_explain_fails_fast_with_the_cards_reason_when_the_model_has_no_contributions(
    kaggle_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "never.csv"
    with live_server(loader=lambda: bundled_session_with(contributions=NO_CONTRIBUTIONS)) as url:
        assert client_main([str(kaggle_csv), "--url", url, "--explain", "--output", str(output)]) == 1
        sent = [metric_value(url, "http_requests_total", route=route) for route in ("/explain", "/predict")]
    assert sent == [0.0, 0.0] and not output.exists()
    assert NO_CONTRIBUTIONS.why in capsys.readouterr().err


def test_a_501_of_explain_is_not_retried_and_shows_the_servers_reason(kaggle_csv: Path) -> None:
    rows = load_kaggle_csv(kaggle_csv).X[:2].tolist()
    with live_server(loader=lambda: bundled_session_with(contributions=NO_CONTRIBUTIONS)) as url:
        client = InferenceClient(url, retries=3, backoff=0.01)
        with pytest.raises(ClientError, match=f"POST {EXPLAIN}: HTTP 501: .*{NO_CONTRIBUTIONS.why}"):
            client.predict(bundled_card().feature_names, rows, EXPLAIN)
        assert metric_value(url, "http_requests_total", route=EXPLAIN, status="501") == 1.0


def test_explain_leaves_the_cells_past_the_non_zero_contributions_empty(tmp_path: Path) -> None:
    # the bundled model's rows have no zero contribution: the answer rows are written here as the server could
    contributions = [{"age": 0.0, "sex": -3e-7, "cp": 0.0, "ca": 0.4147306}, {"age": 0.0, "sex": 0.0}]
    output = tmp_path / "explanations.csv"
    write_predictions(output, [{"condition": 1, "probability": 0.5, "warnings": [], "contributions": c} for c in contributions],
                      "condition", explain=True)
    with output.open() as handle:
        rows = [[row[c] for c in TOP_COLUMNS] for row in csv.DictReader(handle)]
    assert rows == [["ca", "0.4147306", "sex", "-3e-07", "", ""], ["", "", "", "", "", ""]]


# --- API keys -------------------------------------------------------------------------------

KEYS = {"triage": (new_key(), "inference,metadata"), "reader": (new_key(), "metadata")}  # keys a command line takes


def write_keys_file(path: Path, keys: dict[str, tuple[str, str]]) -> Path:
    """An API_KEYS_FILE of ``keys`` (name → key, groups), as the service reads it: each key hashed."""
    lines = [f"{name} sha256:{hashlib.sha256(key.encode()).hexdigest()} {groups}" for name, (key, groups) in keys.items()]
    path.write_text("# written by the test\n" + "\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def keyed_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The service with API keys on (:data:`KEYS`)."""
    keys_file = write_keys_file(tmp_path_factory.mktemp("keys") / "api-keys", KEYS)
    with live_server(settings=Settings(environment={"API_KEYS_FILE": str(keys_file)})) as url:
        yield url


def predicts(args: list[str], output: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """The client's stderr once it wrote every row of the Kaggle table; the key in neither stream."""
    rows = client_csv(args, output)
    out, err = capsys.readouterr()
    assert len(rows) == 297 and not any(key in out + err for key, _ in KEYS.values())
    return err


def refused(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The client's stderr once it exited 1; the key in neither stream."""
    assert client_main(args) == 1
    out, err = capsys.readouterr()
    assert not any(key in out + err for key, _ in KEYS.values()), "the client printed a key"
    return err


def test_the_api_key_flag_is_sent_as_a_bearer_token(keyed_url: str, kaggle_csv: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    predicts([str(kaggle_csv), "--url", keyed_url, "--wait", "5", "--api-key", KEYS["triage"][0]], tmp_path / "p.csv", capsys)
    predicts([str(kaggle_csv), "--url", keyed_url, "--explain", "--api-key", KEYS["triage"][0]], tmp_path / "e.csv", capsys)


def test_the_api_key_comes_from_the_environment(keyed_url: str, kaggle_csv: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(KEY_ENV, KEYS["triage"][0])
    predicts([str(kaggle_csv), "--url", keyed_url], tmp_path / "p.csv", capsys)


def test_the_api_key_flag_wins_over_the_environment(keyed_url: str, kaggle_csv: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(KEY_ENV, KEYS["reader"][0])  # metadata only: /predict would be refused
    predicts([str(kaggle_csv), "--url", keyed_url, "--api-key", KEYS["triage"][0]], tmp_path / "p.csv", capsys)


def test_without_a_key_the_client_exits_with_the_servers_reason(keyed_url: str, kaggle_csv: Path,
                                                                 monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    err = refused([str(kaggle_csv), "--url", keyed_url, "--retries", "3"], capsys)
    assert "GET /model: HTTP 401: an API key is needed" in err and "--api-key or HEART_API_KEY" in err, err


def test_an_unknown_key_exits_with_the_servers_reason_and_is_never_printed(keyed_url: str, kaggle_csv: Path,
                                                                           capsys: pytest.CaptureFixture[str]) -> None:
    unknown = new_key()
    err = refused([str(kaggle_csv), "--url", keyed_url, "--api-key", unknown], capsys)
    assert "GET /model: HTTP 401: unknown API key" in err and unknown not in err, err


def test_a_key_of_another_group_exits_with_the_servers_reason(keyed_url: str, kaggle_csv: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "never.csv"
    err = refused([str(kaggle_csv), "--url", keyed_url, "--api-key", KEYS["reader"][0], "--output", str(output)], capsys)
    assert "POST /predict: HTTP 403:" in err and "'reader' may not call inference endpoints" in err, err
    assert not output.exists()


def recording(statuses: dict[str, int]) -> tuple[list[httpx.Request], httpx.MockTransport]:
    """A transport that answers each path with its status (200 otherwise) and keeps the requests."""
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        status = statuses.get(request.url.path, 200)
        body = {"error": "an API key is needed"} if status >= 400 else {"status": "ready", "predictions": []}
        return httpx.Response(status, json=body)

    return seen, httpx.MockTransport(answer)


def test_the_key_goes_with_every_request() -> None:
    seen, transport = recording({})
    key = KEYS["triage"][0]
    client = InferenceClient("http://model.test", api_key=key, transport=transport)
    client.wait_ready(1)
    with pytest.raises(ClientError):
        client.card()  # not a card: the request was sent all the same
    for endpoint in (PREDICT, EXPLAIN):
        client.predict(["age"], [[1.0]], endpoint)
    assert [r.url.path for r in seen] == ["/health", "/model", PREDICT, EXPLAIN]
    assert [r.headers.get_list("authorization") for r in seen] == [[f"Bearer {key}"]] * 4


@pytest.mark.parametrize("status", [401, 403])
def test_a_refusal_is_never_retried(status: int) -> None:
    seen, transport = recording({PREDICT: status, "/health": status})
    client = InferenceClient("http://model.test", retries=5, backoff=0.01, transport=transport)
    with pytest.raises(ClientError, match=f"POST {PREDICT}: HTTP {status}: an API key is needed"):
        client.predict(["age"], [[1.0]])
    with pytest.raises(ClientError, match=f"GET /health: HTTP {status}"):
        client.wait_ready(5)  # a refused wait ends at once
    assert [r.url.path for r in seen] == [PREDICT, "/health"]


@pytest.mark.parametrize(("retry_after", "waited"), [("1", 1.0), ("60", 5.0), (None, 0.01), ("soon", 0.01)])
def test_a_shed_request_is_retried_no_sooner_than_the_server_asks(retry_after: str | None, waited: float,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A 503 with Retry-After waits that long (at most MAX_BACKOFF_SECONDS), then tries again; without
    one (or one unreadable), the backoff's own delay; each longer by up to JITTER, at random."""
    sleeps: list[float] = []
    monkeypatch.setattr(time, "sleep", sleeps.append)  # the client's waits, recorded instead of slept
    answers = iter([httpx.Response(503, json={"error": "busy"}, headers={"retry-after": retry_after} if retry_after else {}),
                    httpx.Response(200, json={"predictions": []})])
    client = InferenceClient("http://model.test", backoff=0.01, transport=httpx.MockTransport(lambda _: next(answers)))
    assert client.predict(["age"], [[1.0]]) == [] and len(sleeps) == 1 and waited <= sleeps[0] <= waited * (1 + JITTER)


def test_a_retry_after_date_is_waited_for_until_then() -> None:
    in_two_seconds = email.utils.format_datetime(datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=2), usegmt=True)
    assert 0.5 < retry_after(httpx.Response(503, headers={"retry-after": in_two_seconds})) <= 2.0
    assert retry_after(httpx.Response(503, headers={"retry-after": "Sun, 06 Nov 1994 08:49:37 GMT"})) == 0.0  # past


def test_a_key_that_is_no_bearer_token_is_refused_without_being_shown(kaggle_csv: Path, monkeypatch: pytest.MonkeyPatch,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(KEY_ENV, "s3cret\r\nX-Injected: 1")
    with pytest.raises(SystemExit) as exit_:
        client_main([str(kaggle_csv)])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "the API key ($HEART_API_KEY) is not a Bearer token" in err and "s3cret" not in err


def test_a_key_sent_in_plain_text_past_loopback_is_warned_of(capsys: pytest.CaptureFixture[str]) -> None:
    key = KEYS["triage"][0]
    for url in ("http://127.0.0.1:8000", "http://localhost:8000", "https://model.test", "http://model.test"):
        warn_plain_text(url, key)
    warn_plain_text("http://model.test", None)
    err = capsys.readouterr().err
    assert err.splitlines() == ["warning: the API key goes to model.test in plain text (http://): use https://"], err


# --- TLS -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A test CA, the server's certificate for 127.0.0.1 and a client's, made with Debian's openssl."""
    return Pki.make(tmp_path_factory.mktemp("pki"))


def https_server(pki: Pki, mutual: bool) -> Iterator[str]:
    """The service over HTTPS with the test CA's certificate (mutual: clients need one of its
    certificates too); its https:// URL once /health answers."""
    tls = {"TLS_CERT_FILE": str(pki.server.cert), "TLS_KEY_FILE": str(pki.server.key)}
    if mutual:
        tls["TLS_CLIENT_CA_FILE"] = str(pki.ca.cert)
    with tls_server(Settings(environment=tls), pki) as service:
        yield service.url


@pytest.fixture(scope="module")
def https_url(pki: Pki) -> Iterator[str]:
    yield from https_server(pki, mutual=False)


@pytest.fixture(scope="module")
def mutual_url(pki: Pki) -> Iterator[str]:
    yield from https_server(pki, mutual=True)


def test_cacert_verifies_the_https_service(https_url: str, pki: Pki, kaggle_csv: Path, tmp_path: Path) -> None:
    rows = client_csv([str(kaggle_csv), "--url", https_url, "--wait", "5", "--cacert", str(pki.ca.cert)], tmp_path / "p.csv")
    assert len(rows) == 297


def test_without_cacert_the_test_cas_certificate_is_refused_at_once(https_url: str, kaggle_csv: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert client_main([str(kaggle_csv), "--url", https_url, "--retries", "5"]) == 1
    err = capsys.readouterr().err
    assert "GET /model: TLS:" in err and "CERTIFICATE_VERIFY_FAILED" in err and "attempts" not in err, err


def test_cert_and_key_pass_mutual_tls(mutual_url: str, pki: Pki, kaggle_csv: Path, tmp_path: Path) -> None:
    tls = ["--cacert", str(pki.ca.cert), "--cert", str(pki.client.cert), "--key", str(pki.client.key)]
    assert len(client_csv([str(kaggle_csv), "--url", mutual_url, *tls], tmp_path / "p.csv")) == 297


def test_without_a_client_certificate_mutual_tls_refuses_the_client(mutual_url: str, pki: Pki, kaggle_csv: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert client_main([str(kaggle_csv), "--url", mutual_url, "--cacert", str(pki.ca.cert), "--retries", "1"]) == 1
    assert "GET /model" in (err := capsys.readouterr().err) and "--cert and --key" in err, err
