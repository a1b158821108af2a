"""Spec: the keys file's rules (dataplane/access.py), in-process: a good file with comments reads
to its keys; each bad line is named by its number and the rule it breaks, never echoing what it
holds; ``make api-key``'s line is one the service reads, its name and groups checked by the same
rules. The check: a probe needs nothing, a path no protocol declares any known key, and each
refusal carries its reason (missing, malformed, unknown: 401 with ``WWW-Authenticate: Bearer``;
forbidden: 403). The file is re-read at most every SECRETS_RECHECK_SECONDS, a bad one keeping
the last good keys. The front answers a refusal without reading the body, and with no keys file
checks nothing. (Against the real process: tests/reliability/test_api_keys.py.)"""

from __future__ import annotations

import logging
import re
import secrets
from pathlib import Path
from typing import Any

import pytest

from online_inference.app.compose import create_app
from online_inference.app.dataplane.access import (ANY_KEY, Access, KeyOutsideGroups, KeysFile, KeysFileError, NoValidKey,
                                                   PathGroups, digest_of, key_line, parse_keys)
from online_inference.app.errors import error_headers
from online_inference.app.settings import Settings
from online_inference.devtools import api_key
from online_inference.tests.helpers import bundled_session

KEY, OTHER = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
FILE = f"""# who    digest    groups
clinic sha256:{digest_of(KEY).hex()} inference,metadata   # the triage team

ops sha256:{digest_of(OTHER).hex().upper()} metrics
"""


def test_a_good_file_reads_to_its_keys() -> None:
    keys = parse_keys(FILE, "keys")
    assert [(k.name, k.digest, k.groups) for k in keys] == [
        ("clinic", digest_of(KEY), frozenset({"inference", "metadata"})), ("ops", digest_of(OTHER), frozenset({"metrics"}))]


@pytest.mark.parametrize(("line", "said"), [
    ("clinic sha256:{digest} inference,admin", "unknown groups ['admin']"),
    ("clinic sha256:{digest} inference,", "unknown groups; the groups are"),
    ("clinic sha256:{digest} Inference", "unknown groups; the groups are"),
    ("clinic sha256:{short} inference", "expected sha256:<64 hex digits> after the name"),
    ("clinic md5:{digest} inference", "expected sha256:<64 hex digits> after the name"),
    ("clinic {key} inference", "expected sha256:<64 hex digits> after the name"),
    ("clinic sha256:{digest}", "expected three fields"),
    ("cli/nic sha256:{digest} inference", "a name is 1 to 64 of A-Z a-z 0-9 . _ -"),
    ("ops sha256:{digest} inference", "the name 'ops' is given twice"),
])
def test_a_bad_line_is_named_by_its_number_and_rule(line: str, said: str) -> None:
    text = FILE + line.format(digest="ab" * 32, short="ab" * 31, key=KEY) + "\n"
    with pytest.raises(KeysFileError) as error:
        parse_keys(text, "/secrets/keys")
    assert str(error.value).startswith(f"/secrets/keys line 5: {said}")


@pytest.mark.parametrize("line", ["clinic {key} inference", "clinic sha256:{digest} {key}", "{key}", "clinic sha256:{key} inference"])
def test_a_key_pasted_into_the_file_is_never_in_its_error(line: str) -> None:
    with pytest.raises(KeysFileError) as error:
        parse_keys(line.format(key=KEY, digest="ab" * 32), "keys")
    assert KEY not in str(error.value)


def test_make_api_keys_line_is_one_the_service_reads(capsys: pytest.CaptureFixture[str]) -> None:
    assert api_key.main(["--name", "triage.team-1", "--groups", "inference, metadata"]) == 0
    printed = dict(line.split(":  " if line.startswith("key:") else ": ", 1) for line in capsys.readouterr().out.splitlines())
    (key,) = parse_keys(printed["line"], "printed")
    assert len(printed["key"]) == 43 and key.digest == digest_of(printed["key"]) and printed["key"] not in printed["line"]
    assert (key.name, key.groups) == ("triage.team-1", frozenset({"inference", "metadata"}))


def test_an_issued_key_is_one_a_command_line_takes_as_a_value() -> None:
    """A key that began with '-' would be read as an option (``--api-key -x...``, as the README gives it)."""
    keys = [api_key.new_key() for _ in range(2000)]  # about 31 of them would begin with '-' if not drawn again
    assert all(len(key) == 43 and not key.startswith("-") and re.fullmatch(r"[A-Za-z0-9_-]+", key) for key in keys)
    assert len(set(keys)) == len(keys)


@pytest.mark.parametrize(("name", "groups", "said"), [
    ("tri age", "inference", "expected three fields"), ("tri/age", "inference", "a name is 1 to 64"),
    ("x" * 65, "inference", "a name is 1 to 64"), ("triage", "inference,admin", "unknown groups ['admin']"),
    ("triage", "", "expected three fields"),
])
def test_make_api_key_refuses_what_the_file_would(capsys: pytest.CaptureFixture[str], name: str, groups: str, said: str) -> None:
    with pytest.raises(ValueError, match=re.escape(said)):
        key_line(name, KEY, groups)
    with pytest.raises(SystemExit) as exit:
        api_key.main(["--name", name, "--groups", groups])
    assert exit.value.code == 2 and said in capsys.readouterr().err


@pytest.fixture
def access(tmp_path: Path) -> Access:
    path = tmp_path / "keys"
    path.write_text(FILE)
    return Access.of(path, recheck_seconds=3600)


@pytest.mark.parametrize(("authorization", "reason"), [
    ([], "missing"), ([""], "missing"), (["  "], "missing"),
    ([f"Bearer {KEY}", f"Bearer {KEY}"], "malformed"), ([f"Basic {KEY}"], "malformed"), ([f"Bearer\t{KEY}"], "malformed"),
    (["Bearer "], "malformed"), ([KEY], "malformed"), ([f"Bearer {KEY} x"], "malformed"),
    (["Bearer abc"], "unknown"), ([f"Bearer {KEY}x"], "unknown"),
])
def test_a_refused_key_says_why_with_a_401(access: Access, authorization: list[str], reason: str) -> None:
    with pytest.raises(NoValidKey) as refused:
        access.check("inference", authorization)
    assert (refused.value.reason, refused.value.status_code) == (reason, 401)
    assert error_headers(refused.value)["www-authenticate"] == "Bearer" and KEY not in refused.value.message


def test_a_known_key_outside_its_groups_is_a_403_and_one_inside_gives_its_name(access: Access) -> None:
    with pytest.raises(KeyOutsideGroups) as refused:
        access.check("metrics", [f"Bearer {KEY}"])
    assert (refused.value.reason, refused.value.status_code) == ("forbidden", 403)
    assert "www-authenticate" not in error_headers(refused.value) and "'clinic'" in refused.value.message
    assert [access.check(group, [f" bearer  {KEY}\t"]) for group in ("inference", "metadata", ANY_KEY)] == ["clinic"] * 3
    assert access.check(None, []) is None and access.check(ANY_KEY, [f"BEARER {OTHER}"]) == "ops"


def test_without_a_keys_file_nothing_is_checked() -> None:
    assert Access.of(None, 5).check("inference", []) is None


def test_the_file_is_read_again_once_per_recheck_and_a_bad_one_keeps_the_last_good_keys(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "keys"
    path.write_text(FILE)
    keys = KeysFile(path, recheck_seconds=0)
    path.write_text(key_line("ops", OTHER, "metrics") + "\n")
    assert [k.name for k in keys.current()] == ["ops"]
    path.write_text(FILE + "broken\n")
    with caplog.at_level(logging.ERROR):
        assert [k.name for k in keys.current()] == ["ops"] and [k.name for k in keys.current()] == ["ops"]
    assert caplog.text.count("API keys not reloaded, keeping the 1 last good ones") == 2  # loudly: at each check
    assert f"{path} line 5: expected three fields" in caplog.text
    path.unlink()
    assert [k.name for k in keys.current()] == ["ops"]
    with pytest.raises(KeysFileError, match="No such file"):
        KeysFile(tmp_path / "absent", recheck_seconds=3600)


def test_a_change_waits_for_the_recheck(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(FILE)
    keys = KeysFile(path, recheck_seconds=3600)
    path.write_text("")
    assert [k.name for k in keys.current()] == ["clinic", "ops"]


def test_paths_match_their_templates_one_segment_at_a_time() -> None:
    groups = PathGroups({"/predict": "inference", "/v2/models/{name}/infer": "inference", "/health": None})
    assert [groups.group_of(p) for p in ("/predict", "/v2/models/m/infer", "/health")] == ["inference", "inference", None]
    assert {groups.group_of(p) for p in ("/PREDICT", "/predict/", "//predict", "/v2/models/a/b/infer", "/v2/models//infer",
                                         "/health/", "/", "")} == {ANY_KEY}


def asgi(app: Any, path: str, headers: list[tuple[bytes, bytes]], http_version: str = "1.1") -> tuple[int, dict[bytes, bytes], bytes]:
    """One POST through ``app``, whose body must never be read."""
    import asyncio

    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        raise AssertionError("the body was read")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": http_version, "method": "POST", "path": path,
             "raw_path": path.encode(), "root_path": "", "scheme": "http", "query_string": b"", "client": ("127.0.0.1", 1),
             "server": ("127.0.0.1", 8000), "headers": [(b"content-type", b"application/json"), (b"content-length", b"9"), *headers]}
    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], dict(sent[0]["headers"]), b"".join(m.get("body", b"") for m in sent[1:])


def test_the_front_answers_a_refusal_before_reading_the_body(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(FILE)
    app = create_app(Settings(environment={}).replace(API_KEYS_FILE=path), loader=bundled_session)
    app.plane.load()
    status, headers, body = asgi(app, "/predict", [])
    assert (status, headers[b"www-authenticate"], body) == (401, b"Bearer", b'{"error":"an API key is needed: \'Authorization: Bearer <key>\'"}')
    assert asgi(app, "/predict", [(b"authorization", f"Bearer {OTHER}".encode())])[0] == 403
    assert app.plane.metrics.serving.key_refusals == {("missing", "rest"): 1, ("forbidden", "rest"): 1}


def test_without_a_keys_file_the_front_checks_nothing(settings: Settings) -> None:
    app = create_app(settings, loader=bundled_session)
    assert app.access is None  # the one test a request pays
