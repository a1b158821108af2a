"""ASGI's receive, as the front and the hot path read a body: the one definition of a message,
reading a body whole, and giving back what was read (or an error) to whoever reads next."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from online_inference.app.errors import ServiceError

Message = dict[str, Any]  # an ASGI message
Receive = Callable[[], Awaitable[Message]]


async def read_body(receive: Any) -> tuple[bytes, bool]:
    """The body, and whether it all arrived (False: the client went away)."""
    message = await receive()
    if message["type"] == "http.request" and not message.get("more_body", False):
        return message.get("body", b""), True  # most bodies: in one message
    chunks: list[bytes] = []
    while message["type"] == "http.request":
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), True
        message = await receive()
    return b"".join(chunks), False


def replay(body: bytes, complete: bool, receive: Any) -> Any:
    """A ``receive`` that first gives back what was already read, then the rest of the stream."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": not complete}]

    async def replayed() -> Message:
        return pending.pop() if pending else await receive()

    return replayed


def raising(error: ServiceError) -> Any:
    """A ``receive`` that raises ``error``, as the request's own did."""

    async def raise_it() -> Message:
        raise error

    return raise_it
