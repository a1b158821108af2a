"""How the client checks an ``https://`` server (its CA, and the client's own certificate for
mutual TLS), and which failures are TLS's own: another try would fail the same way."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from online_inference.client.errors import ClientError


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
