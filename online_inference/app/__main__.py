"""``python -m online_inference.app``: run the service with uvicorn, configured from the environment.

With WORKERS=1 this very process is the server (no supervisor process in between). SIGTERM or
SIGINT start a graceful shutdown: no new connections, in-flight requests finish (up to
TIMEOUT_GRACEFUL_SHUTDOWN seconds), then the process exits 0 — a normal stop, not a crash.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
from collections.abc import Iterator

import uvicorn

from online_inference.app.config import Settings, SettingsError, get_settings
from online_inference.app.front import create_front
from online_inference.app.protocol import ServiceProtocol


class Server(uvicorn.Server):
    """uvicorn's server, but a requested stop ends with exit status 0 (uvicorn re-raises the
    signal after shutting down, which makes `docker stop` and Kubernetes see 143)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def uvicorn_options(settings: Settings) -> dict[str, object]:
    return dict(
        host=settings.HOST,
        port=settings.PORT,
        log_level=settings.LOG_LEVEL,
        access_log=settings.ACCESS_LOG,
        timeout_keep_alive=settings.TIMEOUT_KEEP_ALIVE,
        timeout_graceful_shutdown=settings.TIMEOUT_GRACEFUL_SHUTDOWN,
        limit_concurrency=settings.LIMIT_CONCURRENCY,
        loop="uvloop",
        http=ServiceProtocol,
        ws="none",
        proxy_headers=False,  # the service reads no client address (no access log by default)
        lifespan="on",
        server_header=False,
    )


def main() -> None:
    try:
        settings = get_settings()
    except SettingsError as error:
        sys.exit(f"heart-online-inference: {error}")
    configure_logging(settings.LOG_LEVEL)
    options = uvicorn_options(settings)
    if settings.WORKERS == 1:
        Server(uvicorn.Config(create_front(settings), **options)).run()  # type: ignore[arg-type]
    else:
        uvicorn.run(
            "online_inference.app.front:create_front", factory=True, workers=settings.WORKERS, **options  # type: ignore[arg-type]
        )


if __name__ == "__main__":
    main()
