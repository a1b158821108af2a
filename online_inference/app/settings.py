"""Service settings, read from the environment. Every field is documented.

A small reader with no dependency: names are the environment variables (matched
case-insensitively); values are converted to the field's type and checked against its bounds;
every bad value is reported at once, before anything starts.
"""

from __future__ import annotations

import os
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

BUNDLED_MODEL = Path(__file__).resolve().parent.parent / "model" / "heart.onnx"


@dataclass(frozen=True)
class Setting:
    """One setting's default, meaning and bounds (what the README's table shows)."""

    default: Any
    description: str
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    pattern: str | None = None

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is out of bounds, or None."""
        if value is None:
            return None
        if self.ge is not None and value < self.ge:
            return f"must be >= {self.ge}"
        if self.gt is not None and value <= self.gt:
            return f"must be > {self.gt}"
        if self.le is not None and value > self.le:
            return f"must be <= {self.le}"
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            return f"must match {self.pattern}"
        return None


class SettingsError(ValueError):
    """Settings that cannot be used, every problem named by its variable."""


TRUE, FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def convert(kind: Any, value: Any) -> Any:
    """A value of the field's type: from an environment string, or given directly (checked)."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        options = [k for k in typing.get_args(kind) if k is not type(None)]
        return None if value is None else convert(options[0], value)
    if typing.get_origin(kind) is Literal:
        value = value.lower() if isinstance(value, str) else value
        if value not in typing.get_args(kind):
            raise ValueError(f"must be one of {list(typing.get_args(kind))}")
        return value
    if kind is float and type(value) is int:
        return float(value)
    if not isinstance(value, str):
        if not isinstance(value, kind) or (kind in (int, float) and isinstance(value, bool)):
            raise ValueError(f"must be {kind.__name__}, got {value!r}")
        return value
    if kind is bool:
        if value.lower() not in TRUE | FALSE:
            raise ValueError(f"must be true or false, got {value!r}")
        return value.lower() in TRUE
    try:
        return kind(value)
    except ValueError:
        raise ValueError(f"must be {kind.__name__}, got {value!r}") from None


class Settings:
    """Configuration of one service process; field names are the environment variables.
    ``Settings(NAME=value)`` overrides the environment; ``Settings(environment={})`` ignores it
    (tests: what the caller's shell exports must not change them)."""

    MODEL_URI: str = Setting(
        default=str(BUNDLED_MODEL),
        description="Where to load the model: s3://bucket/key, https://..., http://..., file://... "
        "or a plain path. Unset: the model bundled with the package.",
    )
    MODEL_SHA256: str | None = Setting(
        default=None,
        pattern=r"^[0-9a-fA-F]{64}$",
        description="If set, the artifact must have this sha256 or the service refuses to serve it.",
    )
    MODEL_CACHE_DIR: Path = Setting(
        default=Path("/tmp/heart-inference-models"),
        description="Where downloaded models are written (atomically); must be writable.",
    )
    MODEL_LOAD_ATTEMPTS: int = Setting(
        default=5, ge=1, description="How many times a transient download failure is tried."
    )
    MODEL_LOAD_BACKOFF_SECONDS: float = Setting(
        default=0.5, ge=0, description="First retry delay; doubles after each failed attempt."
    )
    MODEL_LOAD_TIMEOUT_SECONDS: float = Setting(
        default=30.0, gt=0, description="Connect/read timeout of one download attempt."
    )
    MODEL_LOAD_FROM_REQUEST: bool = Setting(
        default=False, description="Whether a load through the repository API (POST /v2/repository/models/{name}/load, "
        "RepositoryModelLoad) may name its artifact in its parameters: `uri` and `sha256`, both, the artifact checked "
        "against that sha256. Off: a load fetches MODEL_URI again (pinned to MODEL_SHA256 if set)."
    )
    MODEL_POLL_SECONDS: float | None = Setting(
        default=None, gt=0, description="If set, MODEL_URI is checked this often (the store's ETag where it gives one, "
        "else the sha256 of the bytes) and a changed artifact is loaded as the repository API loads one: checked, then "
        "swapped in; a failed one leaves the model served. Unset: no poll."
    )
    HOST: str = Setting(default="127.0.0.1", description="Interface to listen on (0.0.0.0 in images).")
    PORT: int = Setting(default=8000, ge=0, le=65535, description="TCP port to listen on.")
    LOG_LEVEL: Literal["critical", "error", "warning", "info", "debug"] = Setting(
        default="info", description="Log level of the service and of uvicorn."
    )
    ACCESS_LOG: bool = Setting(
        default=False, description="Log every request (uvicorn's access log, and with API_KEYS_FILE a line naming the "
        "key's name, never the key; gRPC's RPCs too); metrics count every request either way."
    )
    MAX_BATCH_ROWS: int = Setting(
        default=10_000, ge=1, description="More rows than this in one request answer 413."
    )
    MAX_BODY_BYTES: int = Setting(
        default=8 * 1024 * 1024, ge=1024, description="A larger request body answers 413 unread."
    )
    MEMORY_BUDGET_BYTES: int = Setting(
        default=128 * 1024 * 1024, ge=64 * 1024 * 1024, description="What all requests in flight may hold together (their "
        "bodies, what parsing makes of them, their answers: each charged its measured worst case, its body's when its head "
        "arrives). One that does not fit answers 503 with Retry-After, its body unread. Size it with the pod's memory "
        "limit: README, Under load."
    )
    MAX_QUEUE_SECONDS: float = Setting(
        default=0.5, gt=0, description="A request (POST) that would wait, or has waited, this long for its work to start "
        "(from its last byte read) answers 503 with Retry-After (load shedding): answered requests stay within this plus "
        "their service time."
    )
    MAX_REQUEST_TARGET_BYTES: int = Setting(
        default=8 * 1024, ge=256, description="A longer request target (path and query) answers 414, read no further."
    )
    MAX_HEADER_BYTES: int = Setting(
        default=16 * 1024, ge=1024, description="A larger header block answers 431, read no further."
    )
    TIMEOUT_KEEP_ALIVE: int = Setting(
        default=5, ge=1, description="Seconds a connection stays open without a request (since it opened, or since its "
        "last answer), whatever it trickles."
    )
    TIMEOUT_HEADERS: float = Setting(
        default=10.0, gt=0, description="Seconds from a request's first byte (bare CRLFs included) to the end of its "
        "headers; later answers 408 and closes (slowloris)."
    )
    TIMEOUT_BODY: float = Setting(
        default=30.0, gt=0, description="Seconds from a request's headers to the end of its body; later answers 408 and closes."
    )
    TIMEOUT_GRACEFUL_SHUTDOWN: int = Setting(
        default=45, ge=1, description="Seconds the connections open at SIGTERM get to be answered and closed; then the "
        "rest are cut."
    )
    GRPC_PORT: int = Setting(
        default=8081, ge=0, le=65535, description="TCP port of the Open Inference Protocol over gRPC "
        "(inference.GRPCInferenceService, grpc.health.v1, server reflection), on HOST; 0: one the system chooses (logged)."
    )
    GRPC_MAX_CONCURRENT_STREAMS: int = Setting(
        default=100, ge=1, description="RPCs one gRPC connection may have open at once (HTTP/2's MAX_CONCURRENT_STREAMS); "
        "a client past it loses the connection. A message is at most MAX_BODY_BYTES (RESOURCE_EXHAUSTED, unread), "
        "must have come TIMEOUT_BODY after its RPC began, and its answer must be taken within TIMEOUT_BODY."
    )
    GRPC_MIN_PING_INTERVAL_SECONDS: float = Setting(
        default=300.0, gt=0, description="A client's keepalive PING sooner than this after its last one, with nothing "
        "sent to it in between, is a strike (gRPC C-core's policy and default)."
    )
    GRPC_MAX_PING_STRIKES: int = Setting(
        default=2, ge=0, description="Strikes past this close the gRPC connection with GOAWAY ENHANCE_YOUR_CALM "
        "(\"too_many_pings\")."
    )
    TLS_CERT_FILE: Path | None = Setting(
        default=None, description="PEM certificate chain: HTTPS and TLS on gRPC (TLS 1.2 at least; plain text is "
        "refused). Needs TLS_KEY_FILE. A renewed file is served to new connections without a restart."
    )
    TLS_KEY_FILE: Path | None = Setting(default=None, description="PEM private key of TLS_CERT_FILE.")
    TLS_CLIENT_CA_FILE: Path | None = Setting(
        default=None, description="PEM CA certificates: mutual TLS, a client without a certificate one of them "
        "signed is refused during the handshake. Needs TLS_CERT_FILE."
    )
    API_KEYS_FILE: Path | None = Setting(
        default=None, description="API keys, one a line: `<name> sha256:<hex digest of the key> <group>[,<group>...]` "
        "(groups: inference, metadata, metrics, model-repository; `#` comments; `make api-key` makes one). "
        "Set: every endpoint but the probes needs `Authorization: Bearer <key>` of its group."
    )
    SECRETS_RECHECK_SECONDS: float = Setting(
        default=5.0, gt=0, description="How often the TLS files and API_KEYS_FILE are checked for a change "
        "(a renewed certificate, a revoked key)."
    )
    OTEL_TELEMETRY: bool = Setting(
        default=False,
        description="FastAPI's native OpenTelemetry (traces, metrics, logs to the process's global "
        "providers). Off: the service exports Prometheus metrics, and the check costs every request.",
    )
    LIMIT_CONCURRENCY: int | None = Setting(
        default=None, ge=1, description="Connections beyond this answer 503 (protects memory)."
    )

    def __init__(self, environment: Mapping[str, str] | None = None, **given: Any):
        unknown = set(given) - set(self.fields())
        if unknown:
            raise SettingsError(f"unknown settings: {sorted(unknown)}")
        environment = {name.upper(): value for name, value in (os.environ if environment is None else environment).items()}
        problems = []
        for name, (kind, field) in self.fields().items():
            raw = given[name] if name in given else environment.get(name, field.default)
            try:
                value = convert(kind, raw)
                problem = field.problem(value)
                if problem:
                    raise ValueError(f"{problem}, got {value!r}")
            except ValueError as error:
                problems.append(f"{name}: {error}")
                continue
            object.__setattr__(self, name, value)
        if problems:
            raise SettingsError("invalid settings: " + "; ".join(problems))

    @classmethod
    def fields(cls) -> dict[str, tuple[Any, Setting]]:
        """Every setting in declaration order: its type and its :class:`Setting`."""
        hints = typing.get_type_hints(cls)
        return {name: (hints[name], value) for name, value in vars(cls).items() if isinstance(value, Setting)}

    def replace(self, **changes: Any) -> Settings:
        """A copy with some settings changed (checked like the rest)."""
        return Settings({}, **{**{name: getattr(self, name) for name in self.fields()}, **changes})

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("settings are read-only")

    def __repr__(self) -> str:
        return "Settings(" + ", ".join(f"{name}={getattr(self, name)!r}" for name in self.fields()) + ")"


@lru_cache
def get_settings() -> Settings:
    return Settings()
