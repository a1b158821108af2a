"""``python -m online_inference.app``: run the service with uvicorn, configured from the environment.

With WORKERS=1 this very process is the server (no supervisor process in between).
"""

from __future__ import annotations

import uvicorn

from online_inference.app.config import get_settings
from online_inference.app.main import configure_logging, create_app
from online_inference.app.protocol import HeaderTimeoutProtocol


def main() -> None:
    settings = get_settings()
    configure_logging(settings.LOG_LEVEL)
    options = dict(
        host=settings.HOST,
        port=settings.PORT,
        log_level=settings.LOG_LEVEL,
        access_log=settings.ACCESS_LOG,
        timeout_keep_alive=settings.TIMEOUT_KEEP_ALIVE,
        timeout_graceful_shutdown=settings.TIMEOUT_GRACEFUL_SHUTDOWN,
        limit_concurrency=settings.LIMIT_CONCURRENCY,
        loop="uvloop",
        http=HeaderTimeoutProtocol,
        server_header=False,
    )
    if settings.WORKERS == 1:
        uvicorn.run(create_app(settings), **options)  # type: ignore[arg-type]
    else:
        uvicorn.run(
            "online_inference.app.main:create_app", factory=True, workers=settings.WORKERS, **options  # type: ignore[arg-type]
        )


if __name__ == "__main__":
    main()
