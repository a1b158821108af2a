"""Remove from a runtime venv what the service never loads, then prove the service still works.

Run in the builder stage: ``python trim_venv.py /venv --model heart.onnx [--keep-pyc]``. (The
builder then replaces the sources a start loads by bytecode and the runtime stage adds the rest by
policy: ``online_inference/precompile.py``.) Each
removal below says why it is safe; the self-check at the end imports every runtime dependency
and runs the model, so a trim that breaks the runtime fails the build instead of the container.
Debug sections are stripped (``strip --strip-debug``, binutils in the builder) only from
extension modules that carry them (uvloop: 13.6 → 1.9 MB), never from a wheel's vendored
``*.libs`` directory: stripping auditwheel-repaired libraries breaks them (numpy then fails to
import), a trap this script refuses to step into.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

# (glob under site-packages, why it is never needed at run time)
REMOVALS: list[tuple[str, str]] = [
    ("onnxruntime/capi/libonnxruntime.so*", "the C API library; the Python binding links its own copy"),
    ("onnxruntime/tools", "model conversion / profiling tools"),
    ("onnxruntime/transformers", "transformer-model optimisers"),
    ("onnxruntime/quantization", "quantisation toolkit"),
    ("onnxruntime/datasets", "sample models"),
    ("onnxruntime/backend", "the ONNX backend-test adapter"),
    ("numpy/**/tests", "numpy's own test suites"),
    ("numpy/f2py", "the Fortran wrapper generator"),
    ("numpy/typing", "typing helpers for type checkers (numpy._typing stays)"),
    ("numpy/_pyinstaller", "PyInstaller hooks"),
    ("numpy/doc", "documentation"),
    ("numpy/random", "random generators: never imported by the service (numpy loads them lazily)"),
    ("numpy/fft", "FFT: never imported"),
    ("numpy/polynomial", "polynomials: never imported"),
    ("numpy/ma", "masked arrays: never imported"),
    ("numpy/testing", "numpy's test helpers"),
    ("numpy/distutils", "numpy's legacy build system (Python < 3.12 only): never imported"),
    ("numpy/linalg/lapack_lite.*.so", "LAPACK for f2py-era callers: never imported (numpy.linalg uses _umath_linalg)"),
    ("numpy/_core/_simd.*.so", "SIMD test module"),
    ("numpy/_core/_*_tests.*.so", "test extension modules"),
    ("pip", "the installer: the image never installs anything"),
    ("pip-*.dist-info", "pip's metadata"),
    ("setuptools", "build tooling"),
    ("setuptools-*.dist-info", "build tooling metadata"),
    ("pkg_resources", "setuptools' runtime, unused"),
    ("_distutils_hack", "setuptools' shim"),
    ("distutils-precedence.pth", "setuptools' shim"),
    ("**/*.pyi", "type stubs"),
    ("**/*.pyx", "Cython sources"),
    ("**/*.pxd", "Cython headers"),
    ("numpy/_core/include", "numpy's C headers: for compiling extensions against it"),
    ("numpy/_core/lib", "numpy's static npymath library and pkg-config files: for compiling extensions"),
    ("packaging", "never imported at run time (onnxruntime requires it for its tools, removed above)"),
    ("packaging-*.dist-info", "its metadata"),
    ("uvicorn/protocols/websockets", "WebSocket protocols: the server runs with ws='none' (app/server.py)"),
    ("fastapi_offline/static/redoc.standalone.js", "ReDoc's script: the service serves Swagger UI only (app/docs_ui.py)"),
    ("simdjson/*.cpp", "pysimdjson's C++ sources (compiled into csimdjson)"),
    ("simdjson/*.h", "pysimdjson's C++ headers"),
]

SELF_CHECK = """
import asyncio, sys, numpy as np, onnxruntime as ort
import fastapi, uvicorn, uvloop, httptools, pydantic, prometheus_client, orjson, simdjson, httpx, httpx_auth
import grpclib.server, h2.connection, google.protobuf.message  # gRPC (app/grpc/): protobuf stays
assert bytes(simdjson.Parser().parse(b"[[1, 2.5]]").as_buffer(of_type="d")) == np.array([1, 2.5]).tobytes()
uvloop.new_event_loop().run_until_complete(asyncio.sleep(0))
httptools.HttpRequestParser(object()).feed_data(b"GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
httptools.parse_url(b"http://127.0.0.1:8000/predict?x=1")
X = np.linspace(0, 1, 26, dtype=np.float32).reshape(2, 13)
assert float(np.round(X, 3).sum()) > 0 and np.nonzero(X > 0.5)[0].size
session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
name = session.get_inputs()[0].name
flags = {i.name: np.array(True) for i in session.get_overridable_initializers() if i.type == "tensor(bool)"}
label, proba, *contributions = session.run(None, {name: np.zeros((2, 13), dtype=np.float32), **flags})  # the If too
assert proba.shape == (2, 2) and all(c.shape == (2, 13) for c in contributions), proba.shape
print("self-check ok: onnxruntime", ort.__version__, "numpy", np.__version__)
"""


def site_packages(venv: Path) -> Path:
    found = sorted(venv.glob("lib/python3*/site-packages"))
    if len(found) != 1:
        raise SystemExit(f"expected one site-packages under {venv}, found {found}")
    return found[0]


def size_of(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size


def remove(path: Path) -> int:
    size = size_of(path)
    shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    return size


def matches(root: Path, pattern: str) -> list[Path]:
    """What a removal's pattern matches under site-packages, nested matches after their parents'."""
    return [p for p in sorted(root.glob(pattern), reverse=True) if p.exists()]


def removal_sizes(venv: Path) -> list[tuple[str, int]]:
    """Bytes each removal would free from an untrimmed venv (the size study's measure of each),
    counting a file once, under the first pattern that matches it."""
    root, counted, sizes = site_packages(venv), set(), []
    for pattern, _ in REMOVALS:
        files = {f for p in matches(root, pattern) for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file()}
        sizes.append((pattern, sum(f.stat().st_size for f in files - counted)))
        counted |= files
    return sizes


def has_debug_sections(path: Path) -> bool:
    sections = subprocess.run(["readelf", "-S", "-W", str(path)], capture_output=True, text=True, check=True).stdout
    return ".debug_info" in sections


def strip_debug(root: Path) -> int:
    """``strip --strip-debug`` extension modules with debug sections, never vendored ``*.libs``."""
    freed = 0
    for path in sorted(root.rglob("*.so")):
        if any(part.endswith(".libs") for part in path.relative_to(root).parts) or not has_debug_sections(path):
            continue
        before = path.stat().st_size
        subprocess.run(["strip", "--strip-debug", str(path)], check=True)
        freed += before - path.stat().st_size
        print(f"stripped debug sections of {path.relative_to(root)}: {before / 1e6:.2f} → {path.stat().st_size / 1e6:.2f} MB")
    return freed


def trim(venv: Path, keep_pyc: bool) -> None:
    root = site_packages(venv)
    total = 0
    for pattern, why in REMOVALS:
        freed = sum(remove(p) for p in matches(root, pattern) if p.exists())
        if freed:
            print(f"removed {pattern:40} {freed / 1e6:7.2f} MB  ({why})")
        total += freed
    total += strip_debug(root)
    for script in ("pip", "pip3", "pip3.11"):
        (venv / "bin" / script).unlink(missing_ok=True)
    if not keep_pyc:
        freed = sum(remove(p) for p in list(root.rglob("__pycache__")))
        print(f"removed {'**/__pycache__':40} {freed / 1e6:7.2f} MB  (.pyc: added by policy in the runtime stage)")
        total += freed
    print(f"trimmed {total / 1e6:.1f} MB from {root}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("venv", type=Path)
    parser.add_argument("--model", type=Path, required=True, help="an ONNX model for the self-check")
    parser.add_argument("--keep-pyc", action="store_true", help="keep any precompiled bytecode")
    args = parser.parse_args()
    trim(args.venv, keep_pyc=args.keep_pyc)
    python = args.venv / "bin" / "python3"
    subprocess.run([str(python), "-B", "-c", SELF_CHECK, str(args.model)], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
