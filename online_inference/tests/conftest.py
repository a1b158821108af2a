"""Fixtures shared by all tests (mirroring MLServer and FastAPI's template: the lifespan runs)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from online_inference.app.http.front import Front
from fastapi.testclient import TestClient

from online_inference.app.settings import Settings
from online_inference.app.compose import create_app
from online_inference.card import ModelCard
from online_inference.export.data import SHIPPED_TABLE
from online_inference.tests.helpers import SHARED_KAGGLE_CSV, bundled_card, bundled_session, loaded


@pytest.fixture(scope="session")
def card() -> ModelCard:
    return bundled_card()


@pytest.fixture(scope="session")
def kaggle_csv() -> Path:
    """The Kaggle file when ../shared has it; otherwise the table the repository ships (the same
    rows: tests/export/test_data.py)."""
    return SHARED_KAGGLE_CSV if SHARED_KAGGLE_CSV.exists() else SHIPPED_TABLE


@pytest.fixture
def settings() -> Settings:
    """The defaults, whatever the caller's environment exports."""
    return Settings(environment={})


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """A TestClient on a fresh app (own metrics registry) whose model is loaded."""
    app = create_app(settings, loader=bundled_session)
    with TestClient(app) as test_client:
        assert loaded(app.plane, 10)
        yield test_client


@pytest.fixture
def ready_app(settings: Settings) -> Front:
    """The whole service with its model loaded, driven straight through ASGI (no lifespan)."""
    app = create_app(settings, loader=bundled_session)
    app.plane.load()
    return app
