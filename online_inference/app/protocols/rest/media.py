"""Media types, as the REST protocols read a request's ``Content-Type``."""

from __future__ import annotations

def media_type(content_type: str | None) -> str:
    """The media type a Content-Type header declares; a request without one is taken as JSON."""
    return (content_type or "application/json").split(";")[0].strip().lower()


def is_json(media: str) -> bool:
    return media == "application/json" or media.endswith("+json")
