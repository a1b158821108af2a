"""A request's body, read within ``MAX_BODY_BYTES``: 413, at once when the declared length is
larger. One wrapper of ASGI's ``receive``, put on every request by the front, so the hot path and
the framework read bodies under the same rule. A body of declared length within the limit needs
no counting (the parser delivers exactly that length), so only chunked bodies are counted. (Its
deadline, ``TIMEOUT_BODY``, is the edge's.)"""

from __future__ import annotations

from typing import Any

from online_inference.app.asgi import Message, Receive
from online_inference.app.errors import PayloadTooLarge


def body_framing(headers: list[tuple[bytes, bytes]]) -> tuple[int | None, bool]:
    """The body's declared length (None if none) and whether it comes chunked (never both: the
    parser refuses such a head), in one pass over the headers."""
    declared, chunked, length_seen = None, False, False
    for name, value in headers:
        if name == b"content-length" and not length_seen:
            value, length_seen = value.strip(b" \t"), True  # the parser keeps the spaces around a value
            declared = int(value) if value.isdigit() else None
        elif name == b"transfer-encoding":
            chunked = chunked or b"chunked" in value.lower()
    return declared, chunked and declared is None


class BodyLimit:
    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes

    def too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"request body over MAX_BODY_BYTES ({self.max_bytes} bytes)")

    def wrap(self, scope: dict[str, Any], receive: Receive, declared: int | None = None) -> Receive:
        """``receive`` for this request, raising PayloadTooLarge rather than going past the limit
        (``declared``: its declared length, if known already; else read from its headers)."""
        if declared is None:
            declared, _ = body_framing(scope["headers"])
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
