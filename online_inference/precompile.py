"""``python -m online_inference.precompile [MODE]``: the images' ``.pyc`` policy, run at build time
(MODE defaults to the ``PYC`` build argument, else ``loaded``).

- ``none``: no bytecode (every start compiles what it imports, in memory: read-only images
  cannot cache it);
- ``all``: compile every module of the venv and the service;
- ``loaded`` (shipped): start the service's import path once — the app, its routes, uvicorn's
  server configuration, uvloop, httptools, the S3 client — with bytecode writing on, so exactly
  the modules a start loads get a ``.pyc`` and nothing else does.
"""

from __future__ import annotations

import compileall
import os
import sys


def compile_loaded() -> None:
    sys.dont_write_bytecode = False
    import uvicorn

    from online_inference.app import __main__ as entry
    from online_inference.app import storage
    from online_inference.app.config import Settings
    from online_inference.app.main import create_app

    settings = Settings()
    app = create_app(settings)
    app.state.dataplane.load()
    app.openapi()
    uvicorn.Config(app, **entry.uvicorn_options(settings)).load()  # type: ignore[arg-type]
    import httpx_auth

    from online_inference import healthcheck

    del storage, httpx_auth, healthcheck  # imported for their bytecode only (remote model, HEALTHCHECK)


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
    print(f"unknown .pyc policy {mode!r}: none, all or loaded", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
