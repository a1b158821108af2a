"""HTTP/1.1 as the load generators write and read it: a request's bytes, an answer's head, the
end of a chunked body, and what a client saw (its outcome, or the failure that cut it off)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

FAILURES = ("reset", "timeout", "refused", "other")
OUTCOMES = ("200", "503_retry_after", "503_no_retry_after", "<status>", *FAILURES, "lost")  # lost: see openloop's give_up
MAX_HEAD_BYTES = 65536


def http_request(url: str, body: bytes | None = None, method: str | None = None, content_type: str = "application/json",
                 headers: Sequence[tuple[str, str]] = ()) -> bytes:
    """The bytes of one HTTP/1.1 request to ``url`` (a POST when there is a body), keep-alive."""
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    method = method or ("POST" if body is not None else "GET")
    lines = [f"{method} {target} HTTP/1.1", f"Host: {parts.netloc}"]
    if body is not None:
        lines += [f"Content-Type: {content_type}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


def host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"an http:// URL is needed, got {url!r}")
    return parts.hostname, parts.port or 80


@dataclass(slots=True)
class Head:
    status: int
    length: int | None  # Content-Length; None: chunked or to the close
    chunked: bool
    close: bool  # the connection closes after this answer
    retry_after: bool


def parse_head(head: bytes) -> Head:
    """The status line and the headers the generator needs (``head`` without its blank line)."""
    lines = head.split(b"\r\n")
    version, _, rest = lines[0].partition(b" ")
    status = int(rest[:3])
    fields: dict[bytes, bytes] = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        fields[name.strip().lower()] = value.strip().lower()
    connection = fields.get(b"connection", b"")
    close = b"close" in connection or (version == b"HTTP/1.0" and b"keep-alive" not in connection)
    chunked = b"chunked" in fields.get(b"transfer-encoding", b"")
    length = None if chunked or b"content-length" not in fields else int(fields[b"content-length"])
    if length is None and not chunked and (status in (204, 304) or 100 <= status < 200):
        length = 0
    return Head(status, length, chunked, close or (length is None and not chunked), b"retry-after" in fields)


def chunked_end(buffer: bytearray, start: int) -> int:
    """Where a chunked body that begins at ``start`` ends (after its trailers), or -1 if incomplete."""
    position = start
    while True:
        line_end = buffer.find(b"\r\n", position)
        if line_end < 0:
            return -1
        size = int(bytes(buffer[position:line_end]).split(b";")[0].strip() or b"0", 16)
        if size == 0:
            trailers_end = buffer.find(b"\r\n\r\n", line_end)
            if buffer[line_end:line_end + 4] == b"\r\n\r\n":
                return line_end + 4
            return -1 if trailers_end < 0 else trailers_end + 4
        position = line_end + 2 + size + 2
        if position > len(buffer):
            return -1


def outcome_of(head: Head) -> str:
    if head.status == 503:
        return "503_retry_after" if head.retry_after else "503_no_retry_after"
    return str(head.status)


def failure_of(error: BaseException | None) -> str:
    """The outcome of a connection lost before a whole answer."""
    if error is None or isinstance(error, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
        return "reset"
    if isinstance(error, ConnectionRefusedError):
        return "refused"
    return "other"
