"""A request's body, read within its limits: at most ``MAX_BODY_BYTES`` (413, at once when the
declared length is larger) and complete within ``TIMEOUT_BODY`` of the request's start (408, and
the connection closes). One wrapper of ASGI's ``receive``, put on every request by the front, so
the hot path and the framework read bodies under the same rules."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from online_inference.app.errors import PayloadTooLarge, RequestTimeout

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]


def declared_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


class BodyLimits:
    def __init__(self, max_bytes: int, timeout: float):
        self.max_bytes = max_bytes
        self.timeout = timeout

    def too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"request body over MAX_BODY_BYTES ({self.max_bytes} bytes)")

    def wrap(self, scope: dict[str, Any], receive: Receive) -> Receive:
        """``receive`` for this request: raises PayloadTooLarge or RequestTimeout instead of
        going past a limit. Once the body is complete it is ``receive`` itself (waiting for a
        disconnect has no deadline)."""
        declared = declared_length(scope["headers"])
        deadline = asyncio.get_running_loop().time() + self.timeout
        received = 0
        complete = False

        async def limited() -> Message:
            nonlocal received, complete
            if complete:
                return await receive()
            if declared is not None and declared > self.max_bytes:
                raise self.too_large()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise RequestTimeout(f"the request body did not arrive within TIMEOUT_BODY ({self.timeout:g} s)") from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise self.too_large()
                complete = not message.get("more_body", False)
            return message

        return limited
