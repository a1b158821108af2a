"""Who may call what: API keys, each with a name and the groups of endpoints it may call.

The keys come from ``API_KEYS_FILE`` (a mounted Secret), stored as hashes, one a line::

    # name   digest of the key                                                        groups
    triage   sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08  inference,metadata

Every protocol asks the same question (:meth:`Access.check`) before it reads a body: REST with its
``Authorization`` header, gRPC with its ``authorization`` metadata, both ``Bearer <key>`` (the
scheme in any case, RFC 9110 §11.1). No key, or one the file does not hold, is
:class:`NoValidKey` (Unauthenticated: 401, UNAUTHENTICATED); a known key outside the endpoint's
group :class:`KeyOutsideGroups` (PermissionDenied: 403, PERMISSION_DENIED); each says why in its
``reason``, which /metrics counts. A key is hashed and its digest compared with every stored one
in constant time; a key itself is never kept or logged, only its name (with ``ACCESS_LOG`` the
protocols log each authenticated call by it, on the logger ``online_inference.access``). Which
group an endpoint belongs to is the protocol's to say (``None``: a probe, open to all); this
module knows only the groups, and the rules of a line (:func:`key_of`), which ``make api-key``
checks its line with.

The file is re-read when it changes (checked at most every ``SECRETS_RECHECK_SECONDS``, on the
next request), so that a key can be revoked without a restart: a bad line stops the service at
start with its number (:class:`KeysFileError`), and a bad file read later keeps the last good keys,
loudly (an error in the log each time it is checked, until it is fixed).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from online_inference.app.errors import PermissionDenied, Unauthenticated
from online_inference.app.settings import SettingsError

log = logging.getLogger(__name__)

GROUPS = ("inference", "metadata", "metrics", "model-repository")
ANY_KEY = "any key"  # what an endpoint no protocol declares needs: a known key (then, likely, 404)
NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
GROUP_LIKE = re.compile(r"[a-z-]{1,32}")
DIGEST = re.compile(r"sha256:(?P<hex>[0-9a-fA-F]{64})")
FORMAT = "three fields, '<name> sha256:<64 hex digits> <group>[,<group>...]'"
# The scheme in any case (RFC 9110 §11.1), spelled so: re.IGNORECASE takes twice as long; then §11.6.2's token68.
BEARER = re.compile(r"[Bb][Ee][Aa][Rr][Ee][Rr] +(?P<token>[A-Za-z0-9._~+/-]+=*)")
calls = logging.getLogger("online_inference.access")  # with ACCESS_LOG, a line per authenticated call: the key's name


class KeysFileError(SettingsError):
    """A keys file that cannot be used, with the number of its bad line (at start: the process
    exits 1 with it, as for any setting that cannot be served)."""


class NoValidKey(Unauthenticated):
    """No key, or not one the file holds; ``reason`` (missing, malformed, unknown) labels /metrics' count."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


class KeyOutsideGroups(PermissionDenied):
    """A known key outside the endpoint's group."""

    reason = "forbidden"


REFUSED = (NoValidKey, KeyOutsideGroups)  # what Access.check raises


@dataclass(frozen=True)
class Key:
    name: str
    digest: bytes  # sha256 of the key
    groups: frozenset[str]


def digest_of(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def key_of(line: str) -> Key:
    """The key of one line of the file (without its comment); ValueError saying which rule it breaks
    (never echoing the line: a key pasted in place of its digest must not reach the log)."""
    fields = line.split()
    if len(fields) != 3:
        raise ValueError(f"expected {FORMAT}")
    name, digest, groups = fields
    if NAME.fullmatch(name) is None:
        raise ValueError("a name is 1 to 64 of A-Z a-z 0-9 . _ -")
    match = DIGEST.fullmatch(digest)
    if match is None:
        raise ValueError("expected sha256:<64 hex digits> after the name")
    given = frozenset(groups.split(","))
    unknown = sorted(given - set(GROUPS))
    if unknown:  # named only if they look like words (a key pasted there is never shown)
        named = [group for group in unknown if GROUP_LIKE.fullmatch(group)]
        raise ValueError(f"unknown groups{f' {named}' if named else ''}; the groups are {list(GROUPS)}")
    return Key(name, bytes.fromhex(match["hex"]), given)


def key_line(name: str, key: str, groups: str) -> str:
    """The file's line of ``key``: its name, its digest (never the key) and its groups (``a,b``),
    checked as the file's lines are; ValueError saying what is wrong."""
    line = f"{name} sha256:{digest_of(key).hex()} {groups}"
    key_of(line)
    return line


def parse_keys(text: str, where: str) -> list[Key]:
    """The keys of a file's text; KeysFileError naming the first bad line."""
    keys: list[Key] = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            key = key_of(line)
        except ValueError as error:
            raise KeysFileError(f"{where} line {number}: {error}") from None
        if any(other.name == key.name for other in keys):
            raise KeysFileError(f"{where} line {number}: the name {key.name!r} is given twice")
        keys.append(key)
    return keys


class KeysFile:
    """The keys of ``API_KEYS_FILE``, re-read when the file changes."""

    def __init__(self, path: Path, recheck_seconds: float):
        self.path = path
        self.recheck_seconds = recheck_seconds
        self.keys = parse_keys(self.read(), str(path))  # a bad file stops the start
        self.stamp = self.file_stamp()
        self.checked = time.monotonic()

    def read(self) -> str:
        try:
            return self.path.read_text()
        except OSError as error:
            raise KeysFileError(f"{self.path}: {error.strerror or error}") from None

    def file_stamp(self) -> tuple[float, int, int] | None:
        try:
            status = self.path.stat()  # a Secret volume swaps a symlink: the target's stamp changes
        except OSError:
            return None
        return status.st_mtime, status.st_size, status.st_ino

    def current(self) -> list[Key]:
        """The keys, re-read first if the file changed since it was last checked."""
        now = time.monotonic()
        if now - self.checked >= self.recheck_seconds:
            self.checked = now
            stamp = self.file_stamp()
            if stamp != self.stamp:
                self.reload(stamp)
        return self.keys

    def reload(self, stamp: tuple[float, int, int] | None) -> None:
        try:
            keys = parse_keys(self.read(), str(self.path))
        except KeysFileError as error:  # keep the last good keys, and say so until the file is fixed
            log.error("API keys not reloaded, keeping the %d last good ones: %s", len(self.keys), error)
            return
        self.keys, self.stamp = keys, stamp
        log.warning("API keys reloaded from %s: %s", self.path, ", ".join(key.name for key in keys) or "none")


class Access:
    """The check every protocol makes before it reads a request's body."""

    def __init__(self, keys: KeysFile | None):
        self.keys = keys  # None: no API_KEYS_FILE, every endpoint open

    @classmethod
    def of(cls, path: Path | None, recheck_seconds: float) -> Access:
        return cls(KeysFile(path, recheck_seconds) if path is not None else None)

    @property
    def enabled(self) -> bool:
        return self.keys is not None

    def check(self, group: str | None, authorization: Sequence[str]) -> str | None:
        """The name of the key that may call an endpoint of ``group`` (None: open, or no keys),
        given the request's ``Authorization`` values; NoValidKey or KeyOutsideGroups otherwise."""
        if self.keys is None or group is None:
            return None
        key = self.known_key(authorization)
        if group != ANY_KEY and group not in key.groups:
            raise KeyOutsideGroups(f"the API key {key.name!r} may not call {group} endpoints")
        return key.name

    def known_key(self, authorization: Sequence[str]) -> Key:
        assert self.keys is not None
        value = authorization[0].strip(" \t") if len(authorization) == 1 else ""
        if not value:
            if any(value.strip(" \t") for value in authorization):
                raise NoValidKey("give one Authorization header, not several", "malformed")
            raise NoValidKey("an API key is needed: 'Authorization: Bearer <key>'", "missing")
        match = BEARER.fullmatch(value)
        if match is None:
            raise NoValidKey("an API key is needed: 'Authorization: Bearer <key>'", "malformed")
        digest = digest_of(match["token"])
        found = None
        for key in self.keys.current():  # every digest compared, in constant time: no early exit
            if hmac.compare_digest(key.digest, digest):
                found = key
        if found is None:
            raise NoValidKey("unknown API key", "unknown")
        return found


class PathGroups:
    """The group of each REST path, from the protocols' path templates (``/v2/models/{name}/infer``:
    a ``{...}`` is one path segment), matched exactly against the request's decoded path, as the
    router matches it. A path no template matches needs :data:`ANY_KEY`: with keys on, nothing is
    open unless a protocol says so."""

    def __init__(self, templates: dict[str, str | None]):
        self.exact = {path: group for path, group in templates.items() if "{" not in path}
        self.patterns = [(re.compile(re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(path))), group)
                         for path, group in templates.items() if "{" in path]

    def group_of(self, path: str) -> str | None:
        if path in self.exact:
            return self.exact[path]
        for pattern, group in self.patterns:
            if pattern.fullmatch(path):
                return group
        return ANY_KEY
