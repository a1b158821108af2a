"""Service settings, read from the environment (pydantic-settings). Every field is documented."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

BUNDLED_MODEL = Path(__file__).resolve().parent.parent / "model" / "heart.onnx"


class Settings(BaseSettings):
    """Configuration of one service process; field names are the environment variables."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", protected_namespaces=())

    MODEL_URI: str = Field(
        default=str(BUNDLED_MODEL),
        description="Where to load the model: s3://bucket/key, https://..., http://..., file://... "
        "or a plain path. Unset: the model bundled with the package.",
    )
    MODEL_SHA256: str | None = Field(
        default=None,
        pattern=r"^[0-9a-fA-F]{64}$",
        description="If set, the artifact must have this sha256 or the service refuses to serve it.",
    )
    MODEL_CACHE_DIR: Path = Field(
        default=Path("/tmp/heart-inference-models"),
        description="Where downloaded models are written (atomically); must be writable.",
    )
    MODEL_LOAD_ATTEMPTS: int = Field(
        default=5, ge=1, description="How many times a transient download failure is tried."
    )
    MODEL_LOAD_BACKOFF_SECONDS: float = Field(
        default=0.5, ge=0, description="First retry delay; doubles after each failed attempt."
    )
    MODEL_LOAD_TIMEOUT_SECONDS: float = Field(
        default=30.0, gt=0, description="Connect/read timeout of one download attempt."
    )
    HOST: str = Field(default="127.0.0.1", description="Interface to listen on (0.0.0.0 in images).")
    PORT: int = Field(default=8000, ge=0, le=65535, description="TCP port to listen on.")
    WORKERS: int = Field(
        default=1, ge=1, description="Server processes. 1 runs the server in this very process."
    )
    LOG_LEVEL: Literal["critical", "error", "warning", "info", "debug"] = Field(
        default="info", description="Log level of the service and of uvicorn."
    )
    ACCESS_LOG: bool = Field(
        default=False, description="Log every request (costs throughput; metrics count them anyway)."
    )
    MAX_BATCH_ROWS: int = Field(
        default=10_000, ge=1, description="More rows than this in one request answer 413."
    )
    MAX_BODY_BYTES: int = Field(
        default=8 * 1024 * 1024, ge=1024, description="A larger request body answers 413 unread."
    )
    TIMEOUT_KEEP_ALIVE: int = Field(
        default=5, ge=1, description="Seconds an idle keep-alive connection stays open."
    )
    TIMEOUT_HEADERS: float = Field(
        default=10.0, gt=0, description="Seconds a client gets to send a request's headers (slowloris)."
    )
    TIMEOUT_GRACEFUL_SHUTDOWN: int = Field(
        default=20, ge=1, description="Seconds in-flight requests get to finish after SIGTERM."
    )
    OTEL_TELEMETRY: bool = Field(
        default=False,
        description="FastAPI's native OpenTelemetry (traces, metrics, logs to the process's global "
        "providers). Off: the service exports Prometheus metrics, and the check costs every request.",
    )
    LIMIT_CONCURRENCY: int | None = Field(
        default=None, ge=1, description="Connections beyond this answer 503 (protects memory)."
    )


@lru_cache
def get_settings() -> Settings:
    return Settings()
