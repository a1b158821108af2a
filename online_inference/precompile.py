"""``python -m online_inference.precompile [MODE]``: the images' ``.pyc`` policy, run at build time
(MODE defaults to the ``PYC`` build argument, else ``loaded``).

- ``none``: no bytecode (every start compiles what it imports, in memory: read-only images
  cannot cache it);
- ``all``: compile every module of the venv and the service;
- ``loaded``: start the service's import path once — the application, uvicorn's server
  configuration, uvloop, httptools, the S3 client, the HEALTHCHECK — with bytecode writing on, so exactly the modules a start loads get a ``.pyc``
  (in ``__pycache__``, beside their source);
- ``sourceless`` (the builder stages): the same import path, but each venv module it loads is
  replaced by its bytecode — a legacy ``module.pyc`` in place of ``module.py``, docstrings
  removed (asserts kept) — so the bytecode costs less than the source it replaces. Run before the
  venv is copied into the runtime stage, whose ``loaded`` pass then only adds the standard
  library's and the service's own ``.pyc``. Tracebacks keep file names and line numbers; they
  cannot quote the source lines of those modules.
"""

from __future__ import annotations

import ast
import compileall
import importlib.util
import json
import linecache
import marshal
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path


def import_start_path() -> dict[str, object]:
    """Import (and run once) everything a start of the service imports; returns the OpenAPI
    document served."""
    from online_inference.app import __main__ as entry
    from online_inference.app.model import storage
    from online_inference.app.settings import Settings
    from online_inference.app.server import build_server

    server = build_server(Settings())
    app = server.config.app
    app.plane.load()
    openapi = app.app.openapi()
    server.config.load()
    del entry
    import httpx_auth

    from online_inference import healthcheck

    del storage, httpx_auth, healthcheck  # imported for their bytecode only (remote model, HEALTHCHECK)
    return openapi


def compile_loaded() -> None:
    sys.dont_write_bytecode = False
    import_start_path()


def strip_docstrings(tree: ast.Module) -> ast.Module:
    """Remove each module, class and function docstring (``pass`` if nothing else is left; the
    other statements keep their line numbers)."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                del node.body[0]
                if not node.body:
                    node.body.append(ast.copy_location(ast.Pass(), first))
    return tree


def write_sourceless(source: Path) -> tuple[int, int]:
    """Write ``source``'s docstring-free bytecode as the legacy ``.pyc`` beside it, then delete the
    source. Returns (source bytes, bytecode bytes)."""
    text = source.read_bytes()
    code = compile(strip_docstrings(ast.parse(text, filename=str(source))), str(source), "exec", dont_inherit=True)
    stat = source.stat()
    header = importlib.util.MAGIC_NUMBER + (0).to_bytes(4, "little")
    header += (int(stat.st_mtime) & 0xFFFFFFFF).to_bytes(4, "little") + (len(text) & 0xFFFFFFFF).to_bytes(4, "little")
    target = source.with_suffix(".pyc")
    partial = target.with_suffix(".pyc.partial")
    partial.write_bytes(header + marshal.dumps(code))
    os.utime(partial, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    partial.replace(target)
    source.unlink()
    return len(text), target.stat().st_size


def venv_sources_of(action: Callable[[], object]) -> tuple[list[Path], set[Path]]:
    """Run ``action``; return the venv (sys.prefix) sources it compiles — every module it imports,
    including those whose import then fails (an optional dependency missing) — and those it also
    reads as text through linecache (``inspect.getsource``: anyio's lazy importer parses its own
    package's source, which a sourceless module cannot give)."""
    compiled: set[str] = set()
    read: set[str] = set()
    recording = [True]

    def record(event: str, args: tuple[object, ...]) -> None:
        if recording and event == "compile" and isinstance(args[1], str):
            compiled.add(args[1])

    def updatecache(filename: str, module_globals: object = None) -> list[str]:
        read.add(filename)
        return original(filename, module_globals)  # type: ignore[arg-type]

    original = linecache.updatecache
    sys.addaudithook(record)  # audit hooks cannot be removed: ``recording`` turns it off
    linecache.updatecache = updatecache  # type: ignore[assignment]
    try:
        action()
    finally:
        recording.clear()
        linecache.updatecache = original
    prefix = Path(sys.prefix).resolve()
    in_venv = {p for p in (Path(n).resolve() for n in compiled if n.endswith(".py")) if p.is_relative_to(prefix)}
    return sorted(in_venv), {Path(n).resolve() for n in read}


def fingerprint() -> dict[str, object]:
    """What a start does, observably: the modules it loads and the OpenAPI document it serves."""
    openapi = import_start_path()
    return {"modules": sorted(sys.modules), "openapi": openapi}


def fresh_fingerprint() -> dict[str, object]:
    out = subprocess.run([sys.executable, "-B", "-m", "online_inference.precompile", "fingerprint"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)  # type: ignore[no-any-return]


def make_sourceless() -> int:
    """Replace the venv sources a start compiles by bytecode; fail unless a fresh start then loads
    the same modules and serves the same OpenAPI document as before."""
    sys.dont_write_bytecode = True
    before = fresh_fingerprint()
    sources, read_as_text = venv_sources_of(import_start_path)
    converted = [source for source in sources if source not in read_as_text]
    kept = [source for source in sources if source in read_as_text]
    folders = {folder: folder.stat() for folder in {source.parent for source in converted}}
    source_mb = bytecode_mb = 0.0
    for source in converted:
        size, compiled = write_sourceless(source)
        source_mb, bytecode_mb = source_mb + size / 1e6, bytecode_mb + compiled / 1e6
    for folder, stat in folders.items():  # same mtimes: the venv layer changes only with its content
        os.utime(folder, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    print(f"sourceless: {len(converted)} venv modules a start loads, {source_mb:.2f} MB of source "
          f"→ {bytecode_mb:.2f} MB of bytecode; kept as source (read as text at start): "
          f"{', '.join(str(k.relative_to(sys.prefix)) for k in kept) or 'none'}")
    after = fresh_fingerprint()
    for key in before:
        if before[key] != after[key]:
            diff = sorted(set(after[key]) ^ set(before[key])) if key == "modules" else "differs"  # type: ignore[call-overload]
            print(f"sourceless venv changed what a start does: {key}: {diff}", file=sys.stderr)
            return 1
    print(f"checked: a fresh start loads the same {len(after['modules'])} modules and serves the same OpenAPI document")  # type: ignore[arg-type]
    return 0


def main(argv: list[str]) -> int:
    mode = argv[0] if argv else os.environ.get("PYC", "loaded")
    if mode == "none":
        return 0
    if mode == "all":
        ok = all(compileall.compile_dir(d, quiet=1) for d in (sys.prefix, "/app"))
        return 0 if ok else 1
    if mode == "loaded":
        compile_loaded()
        return 0
    if mode == "sourceless":
        return make_sourceless()
    if mode == "fingerprint":  # used by sourceless, in a fresh interpreter
        print(json.dumps(fingerprint()))
        return 0
    print(f"unknown .pyc policy {mode!r}: none, all, loaded or sourceless", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
