"""ASGI's receive, as the front and the hot path read a body: the one definition of a message,
reading a body whole, and giving back what was read (or an error) to whoever reads next."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from online_inference.app.errors import ServiceError

Message = dict[str, Any]  # an ASGI message
Receive = Callable[[], Awaitable[Message]]


def whole_body(message: Message) -> bytes | None:
    """The body, if this first message of it holds all of it (most bodies: one message)."""
    if message["type"] == "http.request" and not message.get("more_body", False):
        return message.get("body", b"")  # type: ignore[no-any-return]
    return None


async def read_body(receive: Any, message: Message | None = None) -> tuple[bytes, bool]:
    """The body, and whether it all arrived (False: the client went away); ``message``: its first
    message, if it was received already."""
    message = message if message is not None else await receive()
    body = whole_body(message)
    if body is not None:
        return body, True
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
