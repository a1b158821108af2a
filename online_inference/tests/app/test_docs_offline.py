"""Spec: the interactive documentation works offline. /docs (Swagger UI) loads its assets from the
service itself, and in a browser that can reach nothing but the service it renders every
operation. The screenshot is kept in test-artifacts/."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from online_inference.tests.browser import render
from online_inference.tests.helpers import live_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with live_server() as base:
        yield base


def test_the_pages_name_no_other_host(url: str) -> None:
    for page in ("/docs",):
        html = httpx.get(url + page).text
        assert not re.search(r"(src|href)=\"https?://", html), html
        for asset in re.findall(r"(?:src|href)=\"(/docs-assets/[^\"]+)\"", html):
            assert httpx.get(url + asset).status_code == 200, asset


def test_swagger_ui_renders_every_operation_offline(url: str) -> None:
    dom = render(url + "/docs", screenshot="docs-swagger-ui.png")
    paths = set(re.findall(r'data-path="([^"]+)"', dom))
    operations = httpx.get(url + "/openapi.json").json()["paths"]
    assert paths == set(operations), paths ^ set(operations)
