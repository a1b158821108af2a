"""Spec: settings come from the environment (names in any case), converted to each field's type;
arguments override the environment; every bad value is reported at once, named by its variable;
settings are read-only; every field is documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from online_inference.app.settings import Settings, SettingsError


def set_environment(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    for name, value in values.items():
        monkeypatch.setenv(name, value)


def test_values_come_from_the_environment_in_any_case(monkeypatch: pytest.MonkeyPatch) -> None:
    set_environment(monkeypatch, port="9000", ACCESS_LOG="yes", Log_Level="WARNING", MODEL_CACHE_DIR="/var/cache/models",
                    LIMIT_CONCURRENCY="64")
    settings = Settings()
    assert (settings.PORT, settings.ACCESS_LOG, settings.LOG_LEVEL) == (9000, True, "warning")
    assert settings.MODEL_CACHE_DIR == Path("/var/cache/models") and settings.LIMIT_CONCURRENCY == 64


def test_unset_values_take_their_defaults() -> None:
    settings = Settings()
    assert settings.MODEL_SHA256 is None and settings.LIMIT_CONCURRENCY is None and settings.TIMEOUT_BODY == 30.0


def test_arguments_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "9000")
    assert Settings(PORT=8123).PORT == 8123
    assert Settings().replace(MAX_BATCH_ROWS=3).MAX_BATCH_ROWS == 3


def test_every_bad_value_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    set_environment(monkeypatch, PORT="70000", ACCESS_LOG="maybe", MODEL_SHA256="not-a-digest", TIMEOUT_BODY="soon", LOG_LEVEL="loud")
    with pytest.raises(SettingsError) as error:
        Settings()
    message = str(error.value)
    for name in ("PORT", "ACCESS_LOG", "MODEL_SHA256", "TIMEOUT_BODY", "LOG_LEVEL"):
        assert f"{name}:" in message
    assert "70000" in message and "'maybe'" in message


def test_unknown_arguments_and_assignments_are_refused() -> None:
    with pytest.raises(SettingsError, match="unknown settings"):
        Settings(PROT=1)
    with pytest.raises(AttributeError):
        Settings().PORT = 1  # type: ignore[misc]


def test_every_field_is_documented() -> None:
    for name, (_, field) in Settings.fields().items():
        assert name.isupper() and len(field.description) > 15, name
