"""Fetch the model artifact named by ``MODEL_URI``: a path, ``file://``, ``http(s)://`` or ``s3://``.

Downloads stream into ``MODEL_CACHE_DIR`` and are renamed into place only when complete, so a
half-written file is never read; a download that fails removes its partial file, and one that was
stopped (SIGTERM: the process exits while its download runs in a daemon thread) is removed at the
exit, and one that was killed leaves one that the next fetch sweeps away, with any other artifact a
fetch no longer uses: the cache holds at most the artifact in use. Transient failures (connection errors, timeouts, 429, 5xx) are
retried with exponential backoff; anything else fails at once with the reason. S3 requests are
signed with SigV4 by ``httpx-auth`` from the standard ``AWS_*`` variables (anonymous if none).
:func:`current_etag` asks the store (HEAD) for the artifact's ETag, so that a poll can tell a
changed artifact without downloading it.
Logs name the artifact without its query string, and never a credential.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

if TYPE_CHECKING:  # httpx is imported only for a remote MODEL_URI: a local model starts faster
    import httpx

log = logging.getLogger(__name__)

RETRY_STATUSES = {408, 429, 500, 502, 503, 504}
CHUNK_BYTES = 1 << 20
PART_PREFIX = ".part-"  # a download in progress
PARTIAL: set[str] = set()  # this process's downloads in progress: their partial files
PARTIAL_LOCK = threading.Lock()


class StorageError(Exception):
    """The artifact could not be fetched; ``transient`` says whether trying again may help."""

    def __init__(self, message: str, transient: bool = False):
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True)
class FetchPolicy:
    attempts: int = 5
    backoff_seconds: float = 0.5
    timeout_seconds: float = 30.0
    cache_dir: Path = Path("/tmp/heart-inference-models")


def redact(uri: str) -> str:
    """The URI without user info or query (presigned URLs carry their signature there)."""
    parts = urlsplit(uri)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}" if parts.scheme else uri


def s3_request(uri: str, env: Mapping[str, str]) -> tuple[str, httpx.Auth | None]:
    """``s3://bucket/key`` → the HTTPS URL to GET and the SigV4 auth (None: anonymous)."""
    parts = urlsplit(uri)
    bucket, key = parts.netloc, parts.path.lstrip("/")
    if not bucket or not key:
        raise StorageError(f"{uri}: expected s3://bucket/key")
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    if endpoint:  # MinIO, moto and other S3-compatible stores: path-style addressing
        url = f"{endpoint.rstrip('/')}/{bucket}/{quote(key)}"
    else:
        url = f"https://{bucket}.s3.{region}.amazonaws.com/{quote(key)}"
    access_key, secret_key = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
    if not (access_key and secret_key):
        return url, None
    from httpx_auth import AWS4Auth

    auth = AWS4Auth(
        access_id=access_key,
        secret_key=secret_key,
        region=region,
        service="s3",
        security_token=env.get("AWS_SESSION_TOKEN"),
    )
    return url, auth


@dataclass(frozen=True)
class Fetched:
    """An artifact's bytes, and the store's ETag of them (None: a file, or a store that gives none)."""

    payload: bytes
    etag: str | None = None


def cached_path(url: str, policy: FetchPolicy) -> Path:
    return policy.cache_dir / hashlib.sha256(url.encode()).hexdigest()[:32]


def sweep(policy: FetchPolicy, keep: Path) -> None:
    """Remove what earlier fetches left in the cache that nothing uses: partial files (an
    interrupted download) and artifacts other than ``keep``. Only files untouched for the fetch
    timeout go: a download still running writes within it, and a process that has just fetched
    another artifact has read it by then (another service may share the directory)."""
    stale_before = time.time() - policy.timeout_seconds
    for path in policy.cache_dir.glob("*"):
        try:
            if path != keep and path.is_file() and path.stat().st_mtime < stale_before:
                path.unlink()
                log.info("removed %s from the model cache: %s", path.name, "partial" if path.name.startswith(PART_PREFIX) else "unused")
        except OSError as error:  # gone meanwhile, or not ours to remove: the fetch goes on
            log.warning("could not remove %s from the model cache: %s", path, error)


def download_once(url: str, auth: httpx.Auth | None, policy: FetchPolicy, shown: str) -> tuple[Path, str | None]:
    """One GET streamed to a partial file in the cache dir, renamed into place when complete and
    removed if anything fails (the store, the network, a full disk); the path and the answer's ETag."""
    import httpx

    target = cached_path(url, policy)
    try:
        with httpx.stream("GET", url, auth=auth, timeout=policy.timeout_seconds, follow_redirects=True) as response:
            if response.status_code != 200:
                transient = response.status_code in RETRY_STATUSES
                raise StorageError(f"{shown}: HTTP {response.status_code} {response.reason_phrase}", transient)
            part = tempfile.NamedTemporaryFile(dir=policy.cache_dir, prefix=PART_PREFIX, delete=False)
            with PARTIAL_LOCK:
                PARTIAL.add(part.name)
            try:
                with part:  # closing flushes: a full disk may first show there
                    for chunk in response.iter_bytes(CHUNK_BYTES):
                        part.write(chunk)
                os.replace(part.name, target)
            except BaseException:
                Path(part.name).unlink(missing_ok=True)
                raise
            finally:
                with PARTIAL_LOCK:
                    PARTIAL.discard(part.name)
            etag = response.headers.get("etag")
    except httpx.TransportError as error:
        raise StorageError(f"{shown}: {type(error).__name__}: {error}", transient=True) from error
    except OSError as error:  # the cache dir (not writable, full) or the TLS trust store
        raise StorageError(f"{shown}: {error.strerror or error}: {error.filename or policy.cache_dir}") from error
    return target, etag


@atexit.register
def remove_partial_files() -> None:
    """At the exit (a stop during a download: the download's thread is a daemon, which never gets
    to its own clean-up), the partial files of the downloads still running."""
    with PARTIAL_LOCK:
        names = list(PARTIAL)
    for name in names:
        try:
            Path(name).unlink(missing_ok=True)
            log.info("removed %s from the model cache: a download the exit interrupted", Path(name).name)
        except OSError as error:  # not ours to remove any more: the next fetch's sweep tries again
            log.warning("could not remove %s from the model cache: %s", name, error)


def fetch_remote(uri: str, policy: FetchPolicy, env: Mapping[str, str]) -> tuple[Path, str | None]:
    scheme = urlsplit(uri).scheme
    url, auth = s3_request(uri, env) if scheme == "s3" else (uri, None)
    shown = redact(uri)
    try:
        policy.cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StorageError(f"{shown}: {error.strerror or error}: {policy.cache_dir}") from error
    sweep(policy, keep=cached_path(url, policy))
    delay = policy.backoff_seconds
    for attempt in range(1, policy.attempts + 1):
        try:
            return download_once(url, auth, policy, shown)
        except StorageError as error:
            if not error.transient or attempt == policy.attempts:
                raise StorageError(f"{error} (attempt {attempt} of {policy.attempts})") from error
            log.warning("fetching %s failed (%s); retry %d of %d in %.1fs", shown, error, attempt, policy.attempts - 1, delay)
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


def local_path(uri: str) -> Path:
    return Path(urlsplit(uri).path) if uri.startswith("file://") else Path(uri)


def fetch_model(uri: str, policy: FetchPolicy, env: Mapping[str, str] | None = None) -> bytes:
    """The artifact's bytes; StorageError with the reason when it cannot be had."""
    return fetch_artifact(uri, policy, env).payload


def fetch_artifact(uri: str, policy: FetchPolicy, env: Mapping[str, str] | None = None) -> Fetched:
    """:func:`fetch_model`, with the ETag the store gave the bytes."""
    env = os.environ if env is None else env
    started = time.perf_counter()
    scheme = urlsplit(uri).scheme
    etag = None
    if scheme in ("s3", "http", "https"):
        path, etag = fetch_remote(uri, policy, env)
    elif scheme in ("", "file"):
        path = local_path(uri)
    else:
        raise StorageError(f"unsupported MODEL_URI scheme {scheme!r}: use s3://, https://, http://, file:// or a path")
    try:
        payload = path.read_bytes()
    except OSError as error:
        raise StorageError(f"{redact(uri)}: {error.strerror}: {path}") from error
    log.info("fetched model %s (%d bytes) in %.3fs", redact(uri), len(payload), time.perf_counter() - started)
    return Fetched(payload, etag)


def current_etag(uri: str, policy: FetchPolicy, env: Mapping[str, str] | None = None) -> str | None:
    """The store's ETag of the artifact now (one HEAD, signed like the GET): None for a file or a
    store that gives none; StorageError when the store cannot say."""
    import httpx

    scheme = urlsplit(uri).scheme
    if scheme not in ("s3", "http", "https"):
        return None
    url, auth = s3_request(uri, os.environ if env is None else env) if scheme == "s3" else (uri, None)
    try:
        response = httpx.head(url, auth=auth, timeout=policy.timeout_seconds, follow_redirects=True)
    except httpx.TransportError as error:
        raise StorageError(f"{redact(uri)}: {type(error).__name__}: {error}", transient=True) from error
    if response.status_code != 200:
        raise StorageError(f"{redact(uri)}: HTTP {response.status_code} {response.reason_phrase}",
                           response.status_code in RETRY_STATUSES)
    return response.headers.get("etag")
