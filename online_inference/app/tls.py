"""TLS on every listener (issue #31): the server side's :class:`ssl.SSLContext` of HTTPS and of
gRPC, from ``TLS_CERT_FILE`` and ``TLS_KEY_FILE`` (PEM), with mutual TLS when
``TLS_CLIENT_CA_FILE`` is given; and the renewal of the certificate without a restart.

Both contexts: TLS 1.2 at least, no renegotiation; with mutual TLS a client must present a
certificate one of the CAs signed (``CERT_REQUIRED``), or the handshake fails. They differ in ALPN:
``http/1.1`` for HTTPS (uvicorn's httptools protocol), ``h2`` for gRPC, whose context also keeps
TLS 1.2 to the AEAD ciphers HTTP/2 allows (RFC 9113 §9.2.2). With TLS on, a listener speaks
nothing else: plain text to it fails the handshake, and nothing falls back.

How uvicorn gets its context: through the public ``Config(ssl_context_factory=...)`` (uvicorn
0.47 and later), a callable that returns the context uvicorn's listener uses. :mod:`.server`
hands it :attr:`ServerTls.https`, the very object this module reloads. Rather than the other public
path (``ssl_certfile``/``ssl_keyfile``/``ssl_ca_certs``/``ssl_cert_reqs``, then reloading
``config.ssl``, the context uvicorn built from them), because those options set no minimum version
and no ALPN (uvicorn reads ALPN from the protocol class, and ours is a partial), and that context
would be changed behind uvicorn's back. grpclib takes a context too: ``Server.start(ssl=...)``.

Renewal: cert-manager and Kubernetes Secret volumes replace the files (a symlink swap). Every
``SECRETS_RECHECK_SECONDS`` :meth:`ServerTls.watch` (a task on the server's loop) compares the
files' stamps (device, inode, size, mtime: ``os.stat`` follows the symlinks); when they changed
it reads both files once and loads them (``load_cert_chain``) into the same two contexts, on the
loop's thread, between handshakes. OpenSSL gives a connection its certificate when the connection
is made: new handshakes get the renewed one, open connections keep theirs. The bytes read are
checked in a scratch context first and loaded from memory (a memfd): a bad renewed pair (not PEM,
a key that is not the certificate's) never reaches the live contexts, which keep the last good
pair, and the error is logged, once per change of the files. The client CAs are read at the start
only.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from online_inference.app.settings import Settings, SettingsError

log = logging.getLogger(__name__)

HTTPS_ALPN = ["http/1.1"]
GRPC_ALPN = ["h2"]
GRPC_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20"  # TLS 1.2's; TLS 1.3's are all AEAD
Stamp = tuple[int, int, int, int]


class TlsError(SettingsError):
    """TLS settings or files that cannot be served: the start stops with this message."""


@dataclass(frozen=True)
class Pair:
    """A certificate chain and its private key, as read once (PEM bytes) with the files' stamps."""

    cert: bytes
    key: bytes
    stamps: tuple[Stamp, Stamp]


def stamp(path: Path) -> Stamp:
    status = os.stat(path)  # follows the symlinks of a Secret volume: a swap changes the inode
    return status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns


def refuse_passphrase() -> bytes:
    raise TlsError("TLS_KEY_FILE is encrypted: give the key unencrypted (no setting takes a passphrase)")


class ServerTls:
    """The two server contexts, the files they were loaded from, and their renewal."""

    def __init__(self, cert_file: Path, key_file: Path, client_ca_file: Path | None, recheck_seconds: float):
        self.cert_file, self.key_file, self.client_ca_file = cert_file, key_file, client_ca_file
        self.recheck_seconds = recheck_seconds
        self.https = server_context(HTTPS_ALPN, client_ca_file)
        self.grpc = server_context(GRPC_ALPN, client_ca_file)
        self.grpc.set_ciphers(GRPC_CIPHERS)
        pair = self.read()
        self.load(pair)
        self.stamps = pair.stamps
        self.refused: object = None  # what the last refused renewal was: said once

    @classmethod
    def of(cls, settings: Settings) -> ServerTls | None:
        """The contexts the settings ask for, or None (TLS off: no TLS setting is given)."""
        cert, key, client_ca = settings.TLS_CERT_FILE, settings.TLS_KEY_FILE, settings.TLS_CLIENT_CA_FILE
        if cert is None and key is None and client_ca is None:
            return None
        if cert is None and key is None:
            raise TlsError("invalid settings: TLS_CLIENT_CA_FILE needs TLS_CERT_FILE and TLS_KEY_FILE")
        if cert is None or key is None:
            missing = "TLS_KEY_FILE" if key is None else "TLS_CERT_FILE"
            raise TlsError(f"invalid settings: TLS_CERT_FILE and TLS_KEY_FILE go together: {missing} is not set")
        return cls(cert, key, client_ca, settings.SECRETS_RECHECK_SECONDS)

    @property
    def mutual(self) -> bool:
        return self.client_ca_file is not None

    def describe(self) -> str:
        """What the start logs."""
        mutual = f"; mutual TLS: a client needs a certificate from {self.client_ca_file}" if self.mutual else ""
        return (f"TLS on HTTPS and gRPC (TLS 1.2 at least, plain text refused): {self.cert_file}, "
                f"checked for renewal every {self.recheck_seconds:g} s{mutual}")

    def read(self) -> Pair:
        """Both files, read once, with their stamps (TlsError: unreadable, or no PEM)."""
        stamps, contents = [], []
        for name, path, marker in (("TLS_CERT_FILE", self.cert_file, b"-----BEGIN CERTIFICATE-----"),
                                   ("TLS_KEY_FILE", self.key_file, b"PRIVATE KEY-----")):
            try:
                stamps.append(stamp(path))
                contents.append(path.read_bytes())
            except OSError as error:
                raise TlsError(f"{name}: cannot read {path}: {error.strerror or error}") from None
            if marker not in contents[-1]:
                raise TlsError(f"{name}: {path} holds no PEM {'certificate' if name == 'TLS_CERT_FILE' else 'private key'}")
        return Pair(contents[0], contents[1], (stamps[0], stamps[1]))

    def load(self, pair: Pair) -> None:
        """``pair`` into both contexts, once a scratch context has taken it (TlsError if not)."""
        with in_memory(pair.cert, pair.key) as (cert, key):
            try:
                ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key, password=refuse_passphrase)
            except ssl.SSLError as error:
                raise TlsError(f"TLS_CERT_FILE {self.cert_file} and TLS_KEY_FILE {self.key_file} are no certificate "
                               f"chain and its private key: {error.reason or error}") from None
            for context in (self.https, self.grpc):
                context.load_cert_chain(cert, key, password=refuse_passphrase)

    def renew_if_changed(self) -> bool:
        """Load the files again if their stamps changed; a bad pair keeps the last good one (logged).
        Whether a renewed pair is now served."""
        try:
            if (stamp(self.cert_file), stamp(self.key_file)) == self.stamps:
                return False
            pair = self.read()
        except (OSError, TlsError) as error:
            return self.refuse(None, error)
        if pair.stamps == self.stamps:
            return False
        try:
            self.load(pair)
        except TlsError as error:
            if self.changed_since(pair):  # read in the middle of a swap: the next check reads the whole pair
                return False
            return self.refuse(pair.stamps, error)
        self.stamps = pair.stamps
        log.info("TLS: the renewed %s and %s are served to new connections", self.cert_file, self.key_file)
        return True

    def changed_since(self, pair: Pair) -> bool:
        try:
            return (stamp(self.cert_file), stamp(self.key_file)) != pair.stamps
        except OSError:
            return True

    def refuse(self, stamps: tuple[Stamp, Stamp] | None, error: Exception) -> bool:
        """A renewal that cannot be served: said once per change of the files (or of the error); the
        last good pair stays."""
        refused = stamps if stamps is not None else str(error)
        if refused != self.refused:
            log.error("TLS: the renewed certificate cannot be served, new connections keep the last good one: %s", error)
        self.refused = refused
        return False

    async def watch(self) -> None:
        """:meth:`renew_if_changed` every ``SECRETS_RECHECK_SECONDS``, until cancelled."""
        while True:
            await asyncio.sleep(self.recheck_seconds)
            self.renew_if_changed()


def server_context(alpn: list[str], client_ca_file: Path | None) -> ssl.SSLContext:
    """A server context without its certificate: TLS 1.2 at least; ``CERT_REQUIRED`` with a CA file."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_RENEGOTIATION
    context.set_alpn_protocols(alpn)
    if client_ca_file is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        try:
            context.load_verify_locations(cafile=client_ca_file)
        except OSError as error:  # ssl.SSLError too: no PEM certificate in it
            reason = getattr(error, "reason", None) or error.strerror or error
            raise TlsError(f"TLS_CLIENT_CA_FILE: cannot use {client_ca_file}: {reason}") from None
    return context


@contextmanager
def in_memory(*contents: bytes) -> Iterator[list[str]]:
    """Paths of in-memory files (memfd) holding ``contents``: OpenSSL loads from paths, and what
    was checked is then what is loaded, whatever the files become meanwhile."""
    fds = [os.memfd_create("tls-pem", os.MFD_CLOEXEC) for _ in contents]
    try:
        for fd, content in zip(fds, contents):
            with open(fd, "wb", closefd=False) as file:
                file.write(content)
        yield [f"/proc/self/fd/{fd}" for fd in fds]
    finally:
        for fd in fds:
            os.close(fd)
