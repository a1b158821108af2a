"""Spec: the images' bytecode policy. ``sourceless`` replaces the source of each venv module a
start compiles by its docstring-free bytecode (a legacy ``module.pyc``: still imported,
asserts and line numbers kept), keeps the source of modules something reads as text (anyio's lazy
importer), and leaves everything outside the venv alone."""

from __future__ import annotations

import ast
import importlib
import inspect
import marshal
import sys
import textwrap
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest

from online_inference import precompile

MODULE = '''\
"""A module docstring."""
from __future__ import annotations


class Thing:
    """A class docstring."""

    def method(self) -> int:
        """A method docstring."""
        return 42


def only_a_docstring():
    """Nothing else in here."""


def checks(value: int) -> int:
    assert value > 0, "positive only"
    return value


def fails() -> None:
    raise ValueError("line 23")
'''


@pytest.fixture()
def fake_venv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory standing in for the venv (sys.prefix), on sys.path, with one module in it."""
    (tmp_path / "sourceless_demo.py").write_text(MODULE)
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("sourceless_demo", None)


def test_docstrings_are_removed_and_the_future_import_stays_first() -> None:
    tree = precompile.strip_docstrings(ast.parse(MODULE))
    compile(tree, "demo.py", "exec", dont_inherit=True)  # would raise if __future__ were not first
    assert all(ast.get_docstring(node) is None for node in ast.walk(tree)
               if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)))


def test_a_sourceless_module_imports_and_behaves_the_same_without_docstrings(fake_venv: Path) -> None:
    with_docstrings = len(marshal.dumps(compile(MODULE, "sourceless_demo.py", "exec", dont_inherit=True)))
    _, bytecode_bytes = precompile.write_sourceless(fake_venv / "sourceless_demo.py")
    assert not (fake_venv / "sourceless_demo.py").exists()
    assert (fake_venv / "sourceless_demo.pyc").stat().st_size == bytecode_bytes < with_docstrings
    demo = importlib.import_module("sourceless_demo")
    assert demo.__file__.endswith("sourceless_demo.pyc")
    assert demo.Thing().method() == 42 and demo.only_a_docstring() is None
    assert demo.__doc__ is None and demo.Thing.__doc__ is None and demo.Thing.method.__doc__ is None
    with pytest.raises(AssertionError, match="positive only"):
        demo.checks(-1)


def test_tracebacks_keep_file_and_line(fake_venv: Path) -> None:
    precompile.write_sourceless(fake_venv / "sourceless_demo.py")
    demo = importlib.import_module("sourceless_demo")
    with pytest.raises(ValueError) as raised:
        demo.fails()
    frame = traceback.extract_tb(raised.value.__traceback__)[-1]
    assert (Path(frame.filename).name, frame.lineno, frame.name) == ("sourceless_demo.py", 23, "fails")


def test_venv_sources_are_found_by_compiling_and_those_read_as_text_are_reported(fake_venv: Path) -> None:
    def start() -> None:
        demo = importlib.import_module("sourceless_demo")
        inspect.getsource(demo)  # what anyio's lazy importer does to its own package
        importlib.import_module("textwrap")  # outside the venv: never touched

    compiled, read_as_text = precompile.venv_sources_of(start)
    assert compiled == [(fake_venv / "sourceless_demo.py").resolve()]
    assert (fake_venv / "sourceless_demo.py").resolve() in read_as_text
    assert Path(textwrap.__file__).resolve() not in read_as_text  # outside the venv: never read as text, never compiled


def test_an_unknown_policy_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert precompile.main(["everything"]) == 2
    assert "none, all, loaded or sourceless" in capsys.readouterr().err
