"""Spec: the edge and the server subclass uvicorn only through hooks uvicorn itself defines, each
override calls the parent, and they were checked on the uvicorn release named here, which the
requirements bound. If uvicorn renames, removes or re-signs a hook, these fail (and the behaviour
tests in tests/reliability/test_edge.py and test_drain.py say what broke)."""

from __future__ import annotations

import ast
import asyncio
import inspect
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from online_inference.app.http.charging import ChargingProtocol
from online_inference.app.http.edge import EdgeProtocol
from online_inference.app.server import Server

CHECKED_ON = "0.54.0"
ROOT = Path(__file__).resolve().parents[3]
SUBCLASSES = [(EdgeProtocol, HttpToolsProtocol), (ChargingProtocol, HttpToolsProtocol), (Server, uvicorn.Server)]


def overrides(cls: type, parent: type) -> list[str]:
    return [name for name, value in vars(cls).items() if callable(value) and hasattr(parent, name)]


def test_the_subclasses_were_checked_on_the_installed_uvicorn() -> None:
    assert uvicorn.__version__ == CHECKED_ON


def test_the_requirements_bound_uvicorn_to_the_checked_series() -> None:
    """requirements/runtime.in; the package's dependencies are read from it (pyproject.toml)."""
    major, minor, _ = CHECKED_ON.split(".")
    assert re.search(rf"uvicorn>={major}\.{minor}(\.0)?,<{major}\.{int(minor) + 1}\b", (ROOT / "requirements/runtime.in").read_text())
    assert 'dependencies = { file = ["requirements/runtime.in"] }' in (ROOT / "pyproject.toml").read_text()


@pytest.mark.parametrize("cls,parent", SUBCLASSES)
def test_each_override_is_a_hook_the_parent_defines_with_the_same_signature(cls: type, parent: type) -> None:
    assert overrides(cls, parent)
    for name in overrides(cls, parent):
        ours, theirs = inspect.signature(getattr(cls, name)), inspect.signature(getattr(parent, name))
        if name == "__init__":  # ours adds one keyword (the limits; the drain callback), and passes the rest on
            passes_all = {inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD} <= {p.kind for p in ours.parameters.values()}
            assert passes_all or list(ours.parameters)[:len(theirs.parameters)] == list(theirs.parameters), name
        else:
            assert list(ours.parameters) == list(theirs.parameters), name


@pytest.mark.parametrize("cls,parent", SUBCLASSES)
def test_each_override_calls_the_parent(cls: type, parent: type) -> None:
    for name in overrides(cls, parent):
        tree = ast.parse(textwrap.dedent(inspect.getsource(getattr(cls, name))))
        calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                 and isinstance(node.func.value, ast.Call) and getattr(node.func.value.func, "id", "") == "super"]
        assert any(call.func.attr == name for call in calls), f"{cls.__name__}.{name} does not call the parent's"


@pytest.mark.parametrize("cls", [EdgeProtocol, ChargingProtocol])
def test_the_edge_stays_small(cls: type) -> None:
    source = inspect.getsource(cls)
    assert len(source.splitlines()) < 150


def test_the_edge_adds_no_attribute_to_uvicorns_instance_dict() -> None:
    """Its own state is in slots: past about 28 attributes in an instance's dict, every attribute
    access on the protocol (uvicorn's own included) gets slower (docs/ARCHITECTURE.md)."""
    from online_inference.app.dataplane.admission import Admission
    from online_inference.app.http.edge import EdgeLimits
    from online_inference.app.settings import Settings

    async def app(scope: Any, receive: Any, send: Any) -> None:
        """(never called)"""

    async def instances() -> tuple[set[str], set[str]]:
        config = uvicorn.Config(app, lifespan="off")
        config.load()
        settings = Settings()
        kwargs = {"config": config, "server_state": ServerState(), "app_state": {}}
        edge = EdgeProtocol(limits=EdgeLimits.of(settings), admission=Admission.of(settings), **kwargs)
        return set(vars(edge)), set(vars(HttpToolsProtocol(**kwargs)))

    ours, uvicorns = asyncio.run(instances())
    assert ours == uvicorns
