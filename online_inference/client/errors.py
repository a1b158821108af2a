"""The one error of the client: what it prints (never with the API key) before it exits non-zero."""


class ClientError(Exception):
    """The request cannot succeed as sent (4xx) or the server stayed unavailable."""
