"""Spec: the folders of ``online_inference/app`` are its layers, and imports go one way.

    compose, server, __main__   the composition: the only modules that import the protocols
    http/ (and grpc/)           transports: bytes to requests, limits, the drain
    protocols/                  native/, v2/ (and rest/, what the REST protocols share): decode, encode
    dataplane/                  life cycle, the card's rules on rows, batching, admission, metrics
    model/                      the ONNX session and its storage
    settings, errors, asgi      shared by every layer

A module imports from its own folder (and the folders in it: ``protocols/v2/proto``, its generated
stubs), or from a layer below its own. Transports hand requests to
the protocols the composition gives them, and never import one; one protocol never imports
another (both may use ``protocols/rest``). The data plane and errors import no web framework.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[2] / "app"
PACKAGE = "online_inference.app"
LAYERS = {"composition": 0, "http": 1, "grpc": 1, "protocols": 2, "dataplane": 3, "model": 4, "shared": 5}
COMPOSITION = {"compose", "server", "__main__", "__init__"}
WEB_FRAMEWORKS = ("fastapi", "starlette", "uvicorn", "grpclib", "grpc", "h2")


def module_name(path: Path) -> str:
    return ".".join((PACKAGE, *path.relative_to(APP).with_suffix("").parts))


def layer(module: str) -> str:
    """The layer of an ``online_inference.app`` module (or of ``online_inference.card``: shared)."""
    parts = module.removeprefix(PACKAGE + ".").split(".")
    if not module.startswith(PACKAGE + ".") or len(parts) == 1:
        return "composition" if parts[0] in COMPOSITION and module.startswith(PACKAGE) else "shared"
    return parts[0]


def folder(module: str) -> str:
    """Its folder below ``app`` (``protocols.v2``, ``dataplane``...)."""
    return ".".join(module.removeprefix(PACKAGE + ".").split(".")[:-1])


def imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
    return found


def app_imports(path: Path) -> set[str]:
    """The modules of the package ``path`` imports (``from a.b import c`` counts ``a.b.c`` if it is one)."""
    modules = {module_name(p) for p in APP.rglob("*.py")}
    return {name for name in imports(path) if name in modules}


MODULES = sorted(APP.rglob("*.py"))


def test_every_module_is_in_a_known_layer() -> None:
    assert {layer(module_name(p)) for p in MODULES} <= set(LAYERS)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(APP)))
def test_a_module_imports_only_its_own_folder_and_the_layers_below(path: Path) -> None:
    me = module_name(path)
    wrong = [other for other in app_imports(path)
             if folder(other) != folder(me) and not folder(other).startswith(folder(me) + ".")
             and LAYERS[layer(other)] <= LAYERS[layer(me)]
             and not (folder(other) == "protocols.rest" and layer(me) == "protocols")]
    assert wrong == [], f"{me} imports a layer at or above its own"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(APP)))
def test_only_the_composition_imports_the_protocols(path: Path) -> None:
    me = module_name(path)
    if layer(me) in ("composition", "protocols"):
        return
    assert [other for other in app_imports(path) if layer(other) == "protocols"] == []


@pytest.mark.parametrize("path", [p for p in MODULES if layer(module_name(p)) in ("dataplane", "model", "shared")],
                         ids=lambda p: str(p.relative_to(APP)))
def test_the_data_plane_the_model_and_the_errors_import_no_web_framework(path: Path) -> None:
    assert [name for name in imports(path) if name.split(".")[0] in WEB_FRAMEWORKS] == []


def test_no_module_is_past_300_lines() -> None:
    assert {str(p.relative_to(APP)): n for p in MODULES if (n := len(p.read_text().splitlines())) > 300} == {}
