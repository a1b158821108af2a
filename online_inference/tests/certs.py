"""What the TLS tests share: certificates made at test time with Debian's ``openssl`` (no private
key is committed), a Kubernetes Secret volume's way of replacing them, and the service's server
with TLS in a thread.

:meth:`Pki.make` makes a CA, a server certificate for 127.0.0.1 and localhost (subjectAltName)
that it signed, a client certificate it signed, and another CA with a client certificate of its
own (a stranger's). Every certificate has a serial of its own, so that a renewal is seen. EC P-256
keys: quick to make.
"""

from __future__ import annotations

import os
import secrets
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from online_inference.app.server import Server, build_server
from online_inference.app.settings import Settings
from online_inference.tests.helpers import server_port, wait_until

KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
SERVER_EXTENSIONS = ("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                     # clientAuth too: the HEALTHCHECK under mutual TLS may present the server's own pair
                     "extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n")
CLIENT_EXTENSIONS = "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n"


def openssl(*arguments: str | Path) -> None:
    subprocess.run(["openssl", *map(str, arguments)], check=True, capture_output=True)


@dataclass(frozen=True)
class Pair:
    """A certificate and its private key, as files."""

    cert: Path
    key: Path

    def der(self) -> bytes:
        """The certificate as a peer sees it (``getpeercert(binary_form=True)``)."""
        return ssl.PEM_cert_to_DER_cert(self.cert.read_text())


def make_ca(folder: Path, name: str) -> Pair:
    ca = Pair(folder / f"{name}.crt", folder / f"{name}.key")
    openssl("req", "-x509", *KEY, "-keyout", ca.key, "-out", ca.cert, "-days", "2", "-subj", f"/CN={name}",
            "-set_serial", secrets.randbits(63), "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    return ca


def issue(ca: Pair, folder: Path, name: str, extensions: str) -> Pair:
    """A certificate ``ca`` signed, for ``name`` (its CN), with ``extensions``."""
    pair, request, extfile = Pair(folder / f"{name}.crt", folder / f"{name}.key"), folder / f"{name}.csr", folder / f"{name}.ext"
    extfile.write_text(extensions)
    openssl("req", "-new", *KEY, "-keyout", pair.key, "-out", request, "-subj", f"/CN={name}")
    openssl("x509", "-req", "-in", request, "-CA", ca.cert, "-CAkey", ca.key, "-set_serial", secrets.randbits(63),
            "-days", "2", "-extfile", extfile, "-out", pair.cert)
    return pair


@dataclass(frozen=True)
class Pki:
    folder: Path
    ca: Pair
    server: Pair
    client: Pair
    other_ca: Pair
    stranger: Pair  # a client certificate the other CA signed

    @classmethod
    def make(cls, folder: Path) -> Pki:
        ca, other_ca = make_ca(folder, "test-ca"), make_ca(folder, "other-ca")
        return cls(folder, ca, issue(ca, folder, "server", SERVER_EXTENSIONS), issue(ca, folder, "client", CLIENT_EXTENSIONS),
                   other_ca, issue(other_ca, folder, "stranger", CLIENT_EXTENSIONS))

    def renewed_server(self, name: str) -> Pair:
        """Another server certificate from the same CA (a new key, serial and subject)."""
        return issue(self.ca, self.folder, name, SERVER_EXTENSIONS)

    def client_context(self, cert: Pair | None = None, alpn: str = "http/1.1") -> ssl.SSLContext:
        """A client's context that trusts the test CA and presents ``cert``."""
        context = ssl.create_default_context(cafile=self.ca.cert)
        context.set_alpn_protocols([alpn])
        if cert is not None:
            context.load_cert_chain(cert.cert, cert.key)
        return context


class SecretVolume:
    """A folder that holds ``tls.crt`` and ``tls.key`` as a Kubernetes Secret volume does: links to
    ``..data/``, itself a link to a folder of this version; a new version is written beside it and
    ``..data`` replaced at once (a rename), as the kubelet and cert-manager do."""

    def __init__(self, folder: Path, pair: Pair) -> None:
        self.folder = folder
        folder.mkdir()
        self.versions = 0
        self.write(pair.cert.read_bytes(), pair.key.read_bytes())
        for name in ("tls.crt", "tls.key"):
            (folder / name).symlink_to(f"..data/{name}")

    @property
    def cert(self) -> Path:
        return self.folder / "tls.crt"

    @property
    def key(self) -> Path:
        return self.folder / "tls.key"

    def write(self, cert: bytes, key: bytes) -> None:
        self.versions += 1
        version = self.folder / f"..version_{self.versions}"
        version.mkdir()
        (version / "tls.crt").write_bytes(cert)
        (version / "tls.key").write_bytes(key)
        (self.folder / "..data_tmp").symlink_to(version.name)
        os.replace(self.folder / "..data_tmp", self.folder / "..data")

    def renew(self, pair: Pair) -> None:
        self.write(pair.cert.read_bytes(), pair.key.read_bytes())


@dataclass
class TlsService:
    server: Server
    port: int
    grpc_port: int

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"


@contextmanager
def tls_server(settings: Settings, pki: Pki, timeout: float = 20) -> Iterator[TlsService]:
    """The service's own server (:func:`build_server`) with ``settings`` (its TLS ones) in a thread,
    both ports chosen by the system; yields it once HTTPS /health answers 200 (with the client
    certificate when mutual TLS asks one)."""
    settings = settings.replace(HOST="127.0.0.1", PORT=0, GRPC_PORT=0, LOG_LEVEL="warning")
    server = build_server(settings)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, timeout)
        assert server.grpc is not None
        service = TlsService(server, server_port(server), server.grpc.port)
        verify = pki.client_context(pki.client)
        wait_until(lambda: httpx.get(service.url + "/health", verify=verify).status_code == 200, timeout)
        yield service
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        assert not thread.is_alive(), "the server did not stop"


def handshake(port: int, context: ssl.SSLContext, host: str = "127.0.0.1") -> ssl.SSLSocket:
    """A TLS connection to ``port`` once its handshake is over (ssl.SSLError if it fails)."""
    sock = socket.create_connection((host, port), timeout=10)
    try:
        return context.wrap_socket(sock, server_hostname=host)
    except BaseException:
        sock.close()
        raise
