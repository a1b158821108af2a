"""A request's body, read within ``MAX_BODY_BYTES``: 413, at once when the declared length is
larger. One wrapper of ASGI's ``receive``, put on every request by the front, so the hot path and
the framework read bodies under the same rule. A body of declared length within the limit needs
no counting (the parser delivers exactly that length), so only chunked bodies are counted. (Its
deadline, ``TIMEOUT_BODY``, is the edge's.)"""

from __future__ import annotations

from typing import Any

from online_inference.app.asgi import Message, Receive
from online_inference.app.errors import PayloadTooLarge


def declared_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            value = value.strip(b" \t")  # the parser keeps the spaces around a value
            return int(value) if value.isdigit() else None
    return None


class BodyLimit:
    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes

    def too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"request body over MAX_BODY_BYTES ({self.max_bytes} bytes)")

    def wrap(self, scope: dict[str, Any], receive: Receive) -> Receive:
        """``receive`` for this request, raising PayloadTooLarge rather than going past the limit."""
        declared = declared_length(scope["headers"])
        if declared is not None and declared <= self.max_bytes:
            return receive
        received = 0

        async def limited() -> Message:
            nonlocal received
            if declared is not None:
                raise self.too_large()
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise self.too_large()
            return message

        return limited
