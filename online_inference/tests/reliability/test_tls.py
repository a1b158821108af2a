"""Spec (#31, TLS on every listener; here HTTPS, tests/grpc/test_tls.py gRPC's): with
``TLS_CERT_FILE`` and ``TLS_KEY_FILE`` the service answers over HTTPS only, TLS 1.2 at least: plain
HTTP to the port gets no HTTP answer, and a client that offers only TLS 1.0 and 1.1 is refused in
the handshake. ``TLS_CLIENT_CA_FILE`` asks every client for a certificate that CA signed: none, or
another CA's, is refused in the handshake. A renewed certificate and key (a Secret volume's swap)
is served to new connections without a restart while an open keep-alive connection keeps the old
one, and a bad renewed pair keeps the last good one, loudly. TLS settings or files that cannot be
served stop the start with their reason. The HEALTHCHECK probes over TLS. A stop does not wait for an
idle client's close_notify. Against the service's
own server (:func:`build_server`) in a thread; certificates made with ``openssl`` at test time."""

from __future__ import annotations

import logging
import re
import socket
import ssl
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from online_inference.app.settings import Settings, SettingsError
from online_inference.app.tls import ServerTls
from online_inference.tests.certs import Pki, SecretVolume, TlsService, handshake, tls_server
from online_inference.tests.helpers import bundled_card, live_server, read_response, user_environment, valid_row, wait_until

ROOT = Path(__file__).resolve().parents[3]
CARD = bundled_card()
HEALTH = b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki.make(tmp_path_factory.mktemp("pki"))


def tls_settings(pki: Pki, mutual: bool = False, **more: object) -> Settings:
    client_ca = {"TLS_CLIENT_CA_FILE": pki.ca.cert} if mutual else {}
    return Settings(environment={}, TLS_CERT_FILE=pki.server.cert, TLS_KEY_FILE=pki.server.key, **client_ca, **more)


@pytest.fixture(scope="module")
def service(pki: Pki) -> Iterator[TlsService]:
    with tls_server(tls_settings(pki), pki) as running:
        yield running


@pytest.fixture(scope="module")
def mutual(pki: Pki) -> Iterator[TlsService]:
    with tls_server(tls_settings(pki, mutual=True), pki) as running:
        yield running


def predict_body(rows: int) -> dict[str, object]:
    return {"features": [f.name for f in CARD.features], "data": [valid_row(CARD)] * rows}


@pytest.mark.parametrize("rows", [1, 5000])
def test_health_and_predict_over_https_verified_against_the_ca(service: TlsService, pki: Pki, rows: int) -> None:
    with httpx.Client(verify=pki.client_context()) as client:
        assert client.get(service.url + "/health").json()["status"] == "ready"
        answer = client.post(service.url + "/predict", json=predict_body(rows))  # 5000 rows: an answer of many records
    assert answer.status_code == 200 and len(answer.json()["predictions"]) == rows
    assert httpx.get(service.url.replace("127.0.0.1", "localhost") + "/health", verify=pki.client_context()).status_code == 200


def test_plain_http_to_the_tls_port_gets_no_http_answer(service: TlsService) -> None:
    with socket.create_connection(("127.0.0.1", service.port), timeout=10) as sock:
        sock.sendall(HEALTH)
        try:
            answer = sock.recv(65536)
        except ConnectionResetError:
            answer = b""
    assert answer == b""  # closed, not even a TLS alert: the bytes were no ClientHello
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{service.port}/health")


def offering(pki: Pki, newest: ssl.TLSVersion) -> ssl.SSLContext:
    """A client that offers TLS 1.0 up to ``newest`` (OpenSSL 3 offers 1.0 and 1.1 at security level 0)."""
    context = pki.client_context()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # ssl.TLSVersion.TLSv1 and TLSv1_1 are deprecated
        context.minimum_version, context.maximum_version = ssl.TLSVersion.TLSv1, newest
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    return context


def test_a_client_offering_only_tls_1_0_and_1_1_is_refused(service: TlsService, pki: Pki) -> None:
    with pytest.raises(ssl.SSLError) as refused:
        handshake(service.port, offering(pki, ssl.TLSVersion.TLSv1_1))
    # The server ended the handshake (uvloop closes without sending its protocol_version alert): the
    # client did offer the old versions, it did not fail on its own ("no protocols available").
    assert isinstance(refused.value, (ssl.SSLEOFError, ssl.SSLZeroReturnError)) or \
        refused.value.reason == "TLSV1_ALERT_PROTOCOL_VERSION", refused.value
    with handshake(service.port, offering(pki, ssl.TLSVersion.TLSv1_2)) as sock:  # the same client, up to TLS 1.2
        assert sock.version() == "TLSv1.2"


def tls_1_2(context: ssl.SSLContext) -> ssl.SSLContext:
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    return context


def answer_to(port: int, context: ssl.SSLContext) -> bytes:
    """What a request on a new TLS 1.3 connection gets. The client's side of that handshake ends
    before the server has checked the client's certificate: a refusal shows at the first read."""
    try:
        with handshake(port, context) as sock:
            sock.sendall(HEALTH)
            return sock.recv(65536)
    except (ssl.SSLEOFError, ssl.SSLZeroReturnError, ConnectionResetError):  # closed by the server
        return b""
    except ssl.SSLError as error:  # an alert
        return error.reason.encode() if error.reason else b""


@pytest.mark.parametrize("who", ["none", "stranger"])
def test_mutual_tls_refuses_a_client_without_a_certificate_the_ca_signed_in_the_handshake(
        mutual: TlsService, pki: Pki, who: str) -> None:
    cert = None if who == "none" else pki.stranger  # no certificate; one another CA signed
    with pytest.raises(ssl.SSLError):  # TLS 1.2: the server checks the client before its own Finished
        handshake(mutual.port, tls_1_2(pki.client_context(cert)))
    assert not answer_to(mutual.port, pki.client_context(cert)).startswith(b"HTTP")
    with pytest.raises(httpx.TransportError):
        httpx.get(mutual.url + "/health", verify=pki.client_context(cert))


def test_mutual_tls_serves_a_client_the_ca_signed(mutual: TlsService, pki: Pki) -> None:
    with httpx.Client(verify=pki.client_context(pki.client)) as client:
        assert client.get(mutual.url + "/health").status_code == 200
        assert client.post(mutual.url + "/predict", json=predict_body(3)).status_code == 200


@pytest.fixture
def volume(pki: Pki, tmp_path: Path) -> SecretVolume:
    return SecretVolume(tmp_path / "tls", pki.server)


@pytest.fixture
def renewable(volume: SecretVolume, pki: Pki) -> Iterator[TlsService]:
    settings = Settings(environment={}, TLS_CERT_FILE=volume.cert, TLS_KEY_FILE=volume.key, SECRETS_RECHECK_SECONDS=0.1,
                        TIMEOUT_KEEP_ALIVE=60)
    with tls_server(settings, pki) as running:
        yield running


def served(port: int, pki: Pki, alpn: str = "http/1.1") -> bytes:
    """The certificate a new connection to ``port`` gets."""
    with handshake(port, pki.client_context(alpn=alpn)) as sock:
        return sock.getpeercert(binary_form=True) or b""


def test_a_renewed_certificate_is_served_to_new_connections_while_an_open_one_keeps_its_own(
        renewable: TlsService, volume: SecretVolume, pki: Pki) -> None:
    kept = handshake(renewable.port, pki.client_context())
    with kept:
        kept.sendall(HEALTH)
        assert read_response(kept).startswith(b"HTTP/1.1 200")
        renewed = pki.renewed_server("renewed")
        volume.renew(renewed)
        wait_until(lambda: served(renewable.port, pki) == renewed.der(), 10)
        assert served(renewable.grpc_port, pki, alpn="h2") == renewed.der()
        kept.sendall(HEALTH)  # the connection opened before the renewal: still served, with its certificate
        assert read_response(kept).startswith(b"HTTP/1.1 200")
        assert kept.getpeercert(binary_form=True) == pki.server.der()
    with httpx.Client(verify=pki.client_context()) as client:
        assert client.post(renewable.url + "/predict", json=predict_body(2)).status_code == 200


def test_a_bad_renewed_pair_keeps_the_last_good_one_loudly(renewable: TlsService, volume: SecretVolume, pki: Pki,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="online_inference.app.tls")
    other = pki.renewed_server("other")
    volume.write(other.cert.read_bytes(), pki.server.key.read_bytes())  # a key that is not the certificate's
    wait_until(lambda: any("cannot be served" in r.getMessage() for r in caplog.records), 10)
    assert "KEY_VALUES_MISMATCH" in caplog.text
    assert served(renewable.port, pki) == pki.server.der() and served(renewable.grpc_port, pki, "h2") == pki.server.der()
    volume.write(b"not a certificate\n", b"not a key\n")
    wait_until(lambda: "holds no PEM certificate" in caplog.text, 10)
    time.sleep(0.5)  # pacing: five rechecks of the same bad files
    assert sum("cannot be served" in r.getMessage() for r in caplog.records) == 2  # once per change of the files
    assert served(renewable.port, pki) == pki.server.der()
    volume.renew(other)  # then a good pair: served
    wait_until(lambda: served(renewable.port, pki) == other.der(), 10)


def broken(pki: Pki, tmp_path: Path) -> dict[str, dict[str, object]]:
    """Settings that cannot be served, each with words of its reason."""
    garbage, encrypted = tmp_path / "garbage.pem", tmp_path / "encrypted.key"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    subprocess.run(["openssl", "ec", "-in", pki.server.key, "-aes256", "-passout", "pass:secret", "-out", encrypted],
                   check=True, capture_output=True)
    return {
        "TLS_KEY_FILE is not set": {"TLS_CERT_FILE": pki.server.cert},
        "TLS_CERT_FILE is not set": {"TLS_KEY_FILE": pki.server.key},
        "TLS_CLIENT_CA_FILE needs TLS_CERT_FILE": {"TLS_CLIENT_CA_FILE": pki.ca.cert},
        "TLS_CERT_FILE: cannot read": {"TLS_CERT_FILE": tmp_path / "missing.crt", "TLS_KEY_FILE": pki.server.key},
        "TLS_KEY_FILE: cannot read": {"TLS_CERT_FILE": pki.server.cert, "TLS_KEY_FILE": tmp_path},
        "holds no PEM private key": {"TLS_CERT_FILE": pki.server.cert, "TLS_KEY_FILE": pki.server.cert},
        "no certificate chain and its private key": {"TLS_CERT_FILE": garbage, "TLS_KEY_FILE": pki.server.key},
        "KEY_VALUES_MISMATCH": {"TLS_CERT_FILE": pki.client.cert, "TLS_KEY_FILE": pki.server.key},
        "TLS_KEY_FILE is encrypted": {"TLS_CERT_FILE": pki.server.cert, "TLS_KEY_FILE": encrypted},
        "TLS_CLIENT_CA_FILE: cannot use": {"TLS_CERT_FILE": pki.server.cert, "TLS_KEY_FILE": pki.server.key,
                                           "TLS_CLIENT_CA_FILE": pki.server.key},
    }


def test_tls_settings_that_cannot_be_served_say_why(pki: Pki, tmp_path: Path) -> None:
    for reason, given in broken(pki, tmp_path).items():
        with pytest.raises(SettingsError, match=reason):
            ServerTls.of(Settings(environment={}, **given))
    assert ServerTls.of(Settings(environment={})) is None  # off by default


def test_the_process_stops_at_start_with_the_reason(pki: Pki, tmp_path: Path) -> None:
    env = {**user_environment(), "PYTHONPATH": str(ROOT), "PORT": "0", "GRPC_PORT": "0",
           "TLS_CERT_FILE": str(pki.client.cert), "TLS_KEY_FILE": str(pki.server.key)}
    result = subprocess.run([sys.executable, "-m", "online_inference.app"], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1 and "heart-online-inference: TLS_CERT_FILE" in result.stderr
    assert "KEY_VALUES_MISMATCH" in result.stderr and "Traceback" not in result.stderr


def healthcheck(port: int, **env: str | Path) -> subprocess.CompletedProcess[str]:
    """The images' HEALTHCHECK (``python -m online_inference.healthcheck``) with ``env``."""
    environment = {**user_environment(), "PYTHONPATH": str(ROOT), "PORT": str(port), **{k: str(v) for k, v in env.items()}}
    return subprocess.run([sys.executable, "-m", "online_inference.healthcheck"], env=environment, capture_output=True,
                          text=True, timeout=30)


def test_the_healthcheck_probes_over_tls(service: TlsService, pki: Pki) -> None:
    assert healthcheck(service.port, TLS_CERT_FILE=pki.server.cert, TLS_KEY_FILE=pki.server.key).returncode == 0
    plain = healthcheck(service.port)
    assert plain.returncode == 1 and "unhealthy" in plain.stderr


def test_the_healthcheck_presents_a_client_certificate_under_mutual_tls(mutual: TlsService, pki: Pki) -> None:
    tls = {"TLS_CERT_FILE": pki.server.cert, "TLS_KEY_FILE": pki.server.key, "TLS_CLIENT_CA_FILE": pki.ca.cert}
    assert healthcheck(mutual.port, **tls).returncode == 0  # the server's own pair: the CA signed it for clients too
    given = healthcheck(mutual.port, **tls, HEALTHCHECK_CERT_FILE=pki.client.cert, HEALTHCHECK_KEY_FILE=pki.client.key)
    assert given.returncode == 0
    stranger = healthcheck(mutual.port, **tls, HEALTHCHECK_CERT_FILE=pki.stranger.cert, HEALTHCHECK_KEY_FILE=pki.stranger.key)
    assert stranger.returncode == 1 and "HEALTHCHECK_CERT_FILE" in stranger.stderr


def test_without_tls_the_healthcheck_probes_plain_http() -> None:
    with live_server() as url:
        assert healthcheck(int(url.rsplit(":", 1)[1])).returncode == 0


def test_a_stop_with_an_idle_keep_alive_client_ends_without_waiting_for_its_close_notify(pki: Pki, tmp_path: Path) -> None:
    """An idle pooled connection reads nothing, so it never answers the server's close_notify:
    the process exits at its idle deadline, not 30 s later (uvloop's TLS shutdown wait)."""
    env = {**user_environment(), "PORT": "0", "GRPC_PORT": "0", "TIMEOUT_KEEP_ALIVE": "2",
           "TLS_CERT_FILE": str(pki.server.cert), "TLS_KEY_FILE": str(pki.server.key)}
    log = (tmp_path / "log").open("w")
    process = subprocess.Popen([sys.executable, "-m", "online_inference.app"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        ports: list[str] = []
        wait_until(lambda: bool(ports.extend(re.findall(r"running on https://[\d.]+:(\d+)", (tmp_path / "log").read_text())) or ports), 60)
        idle = pki.client_context().wrap_socket(socket.create_connection(("127.0.0.1", int(ports[0]))), server_hostname="127.0.0.1")
        idle.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        assert idle.recv(100).startswith(b"HTTP/1.1 200")
        stopped = time.monotonic()
        process.terminate()
        assert process.wait(20) == 0
        assert time.monotonic() - stopped < 2 + 5  # TIMEOUT_KEEP_ALIVE, then at most TLS_CLOSE_NOTIFY_WAIT and the exit
        idle.close()
    finally:
        process.kill()
