"""``python -m online_inference.healthcheck``: exit 0 when the local service answers /health 200.

For Docker's HEALTHCHECK in images without curl or a shell; standard library only. Docker runs it
in the container, with the service's environment: ``PORT`` and the TLS settings (names matched
case-insensitively, as the service matches them).

With TLS (``TLS_CERT_FILE`` set) it probes ``https://127.0.0.1:PORT/health`` (TLS 1.2 at least)
without verifying the server's certificate: that certificate names the service's public host, not
127.0.0.1, and its CA is the clients' (often a public one the image does not carry), so no check
could pass in general. The probe goes to loopback, inside the container's own network namespace,
sends nothing secret and reads a status only. With mutual TLS (``TLS_CLIENT_CA_FILE`` set) the
service refuses a client without a certificate its CA signed, so the probe presents one:
``HEALTHCHECK_CERT_FILE`` and ``HEALTHCHECK_KEY_FILE`` if set, otherwise the service's own
``TLS_CERT_FILE`` and ``TLS_KEY_FILE``: enough when one CA issues both and the server's
certificate may authenticate a client (no extendedKeyUsage, or clientAuth in it).
"""

from __future__ import annotations

import http.client
import os
import ssl
import sys
import urllib.request


def tls_context(env: dict[str, str]) -> ssl.SSLContext | None:
    """The probe's TLS (see the module), or None when the service serves plain HTTP."""
    if not env.get("TLS_CERT_FILE"):
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # loopback only: see the module
    if env.get("TLS_CLIENT_CA_FILE"):
        context.load_cert_chain(env.get("HEALTHCHECK_CERT_FILE") or env["TLS_CERT_FILE"],
                                env.get("HEALTHCHECK_KEY_FILE") or env.get("TLS_KEY_FILE"))
    return context


def main() -> int:
    env = {name.upper(): value for name, value in os.environ.items()}
    try:
        context = tls_context(env)
        url = f"{'https' if context else 'http'}://127.0.0.1:{env.get('PORT', '8000')}/health"
        with urllib.request.urlopen(url, timeout=float(env.get("HEALTHCHECK_TIMEOUT", "3")), context=context) as response:
            return 0 if response.status == 200 else 1
    except (OSError, http.client.HTTPException) as error:  # URLError, HTTPError (503 while loading), timeouts, TLS
        mutual = " (mutual TLS: the probe presents HEALTHCHECK_CERT_FILE, else TLS_CERT_FILE)" if env.get("TLS_CLIENT_CA_FILE") else ""
        print(f"unhealthy: {error}{mutual}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
