"""``python -m online_inference.docker.size_study`` (``make size-report``): the image-size study.

Builds every step from the conventional full image to the shipped distroless one with the same
Makefile targets users run, measures each (uncompressed and gzipped, above its base, per layer,
largest packages), smoke-tests it (health + a prediction, read-only) with its start-up time, and
writes ``online_inference/SIZE_REPORT.md``, ``results/size.json`` and the README's summary. No
figure is typed by hand.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from online_inference.docker.dockercli import ROOT, docker, inspect, make
from online_inference.docker.measure import MB, ImageMeasure, base_of, measure
from online_inference.provenance import provenance
from online_inference.docker.size_render import render_report, render_summary
from online_inference.docker.trim_venv import removal_sizes

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
REPORT = HERE.parent / "SIZE_REPORT.md"
OFFICIAL = json.loads((HERE / "official_bases.json").read_text())
STUDY_IMAGE = "heart-study"
SINGLE = "online_inference/docker/study/Dockerfile.single"


@dataclass(frozen=True)
class Step:
    name: str
    what: str
    target: str  # the Makefile's image-<variant>
    overrides: dict[str, str]


UNTRIMMED = "distroless-untrimmed"
SOURCE = "--build-arg VENV_PYC=source "  # the venv keeps its sources (no sourceless bytecode)
WHEELS = "--build-arg NUMPY=wheels "  # numpy's PyPI wheel (OpenBLAS bundled), as before the source build
NO_BLAS_ONLY = '--build-arg NUMPY_OPTIONS="-Dblas=none -Dlapack=none" '  # numpy's other build options as PyPI's
STEPS = (
    Step("full", "python:3.11 + the scikit-learn stack, single stage (the shipped `full`: the baseline)", "full", {}),
    Step("slim-sklearn", "python:3.11-slim base, same scikit-learn stack, single stage", "slim",
         {"FILE_slim": SINGLE, "EXTRA_BUILD_ARGS": "--build-arg REQUIREMENTS=requirements/export.txt"}),
    Step("slim-onnx", "ONNX Runtime instead of scikit-learn / scipy / pandas, single stage", "slim",
         {"FILE_slim": SINGLE, "EXTRA_BUILD_ARGS": "--build-arg REQUIREMENTS=requirements/runtime.txt"}),
    Step("slim-multistage", "multi-stage: venv built apart, no pip cache, no compilers, no .pyc", "slim",
         {"EXTRA_BUILD_ARGS": WHEELS + SOURCE + "--build-arg TRIM=0 --build-arg PYC=none"}),
    Step("slim-trimmed", "+ trim what the runtime never loads; the venv modules a start loads as docstring-free bytecode "
         "in place of their source, .pyc for the service", "slim", {"EXTRA_BUILD_ARGS": WHEELS}),
    Step("slim", "+ numpy built from its source distribution without BLAS or LAPACK, SVML, x86-simd-sort or "
         "dispatched SIMD variants, optimised for size, stripped (the shipped `slim`)", "slim", {}),
    Step("distroless-multistage", "distroless runtime (no shell, no package manager), untrimmed, no .pyc", "distroless",
         {"EXTRA_BUILD_ARGS": WHEELS + SOURCE + "--build-arg TRIM=0 --build-arg PYC=none"}),
    Step("distroless-nopyc", "+ trim what the runtime never loads, no .pyc", "distroless",
         {"EXTRA_BUILD_ARGS": WHEELS + SOURCE + "--build-arg PYC=none"}),
    Step("distroless-allpyc", "the same with .pyc for every module (`PYC=all`)", "distroless",
         {"EXTRA_BUILD_ARGS": WHEELS + SOURCE + "--build-arg PYC=all"}),
    Step("distroless-loadedpyc", "the same with .pyc only for what a start loads (`PYC=loaded`)", "distroless",
         {"EXTRA_BUILD_ARGS": WHEELS + SOURCE + "--build-arg PYC=loaded"}),
    Step("distroless-sourceless", "the venv modules a start loads as docstring-free bytecode in place of their source "
         "(`VENV_PYC=sourceless`), .pyc for the standard library and service modules it loads", "distroless",
         {"EXTRA_BUILD_ARGS": WHEELS}),
    Step("distroless-noblas", "+ numpy built from its source distribution without BLAS or LAPACK (`NUMPY=source`)",
         "distroless", {"EXTRA_BUILD_ARGS": NO_BLAS_ONLY}),
    Step("distroless", "+ nor numpy's SVML math, x86-simd-sort and dispatched SIMD variants, which the service never "
         "calls, optimised for size, stripped (the shipped `distroless`)", "distroless", {}),
    Step(UNTRIMMED, "the shipped `distroless` without the trim (`TRIM=0`): what each removal frees (below)", "distroless",
         {"EXTRA_BUILD_ARGS": "--build-arg TRIM=0"}),
)
NUMPY_STAGE = "numpy-source"

S3_CLIENTS = {
    "httpx + httpx-auth (chosen)": ["httpx", "httpx-auth"],
    "obstore": ["obstore"],
    "boto3": ["boto3"],
}


def log(message: str) -> None:
    print(f"[size-study] {message}", file=sys.stderr, flush=True)


def build(step: Step) -> tuple[str, float]:
    """The step's image tag, and the seconds its build took (BuildKit's cache as CI has it)."""
    tag = f"{STUDY_IMAGE}:{step.target}-{step.name}"
    variables = {"IMAGE": STUDY_IMAGE, "TAG_SUFFIX": f"-{step.name}", **step.overrides}
    for name in ("DOCKER", "OFFLINE", "PIP_CERT"):
        if os.environ.get(name):
            variables[name] = os.environ[name]
    started = time.perf_counter()
    make(f"image-{step.target}", **variables)
    seconds = time.perf_counter() - started
    log(f"built {tag} in {seconds:.0f}s")
    return tag, seconds


def time_numpy_build() -> dict[str, object]:
    """How long numpy's source build takes (the ``numpy-source`` stage of the slim image, built
    without BuildKit's cache), and with which options: the build time it adds to an image."""
    step = Step("numpy-build", "numpy's source build alone", "slim",
                {"EXTRA_BUILD_ARGS": f"--no-cache --target {NUMPY_STAGE}"})
    tag, seconds = build(step)
    options = next(line.split("=", 1)[1].strip('"') for line in (ROOT / "online_inference/Dockerfile.slim").read_text().splitlines()
                   if line.startswith("ARG NUMPY_OPTIONS="))
    subprocess.run([os.environ.get("DOCKER", "docker"), "image", "rm", "--force", tag], check=True, capture_output=True)
    return {"seconds": round(seconds, 1), "options": options}


def trim_removals(image: str) -> dict[str, float]:
    """MB that each removal of the trim frees, measured on the venv of an untrimmed image."""
    container = docker("create", image).stdout.strip()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            docker("cp", f"{container}:/venv", tmp)
            return {pattern: size / MB for pattern, size in removal_sizes(Path(tmp) / "venv")}
    finally:
        docker("rm", container)


def installed_size(packages: list[str]) -> tuple[float, list[str]]:
    """MB that ``pip install`` of these packages (with their dependencies) puts on disk."""
    with tempfile.TemporaryDirectory() as target:
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
             "--only-binary=:all:", "--target", target, *packages],
            check=True, capture_output=True, timeout=600,
        )
        root = Path(target)
        total = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
        dists = sorted(p.name.removesuffix(".dist-info") for p in root.glob("*.dist-info"))
    return total / MB, dists


def base_identities(bases: set[str]) -> dict[str, dict[str, object]]:
    """The exact base images used: image ID (the digest of their config) and any registry digests."""
    out: dict[str, dict[str, object]] = {}
    for base in sorted(bases):
        info = inspect(base)
        out[base] = {"id": info["Id"], "repo_digests": info.get("RepoDigests") or [], "created": info.get("Created", "")}
    return out


def write_outputs(data: dict) -> None:  # type: ignore[type-arg]
    (RESULTS / "size.json").write_text(json.dumps(data, indent=1) + "\n")
    REPORT.write_text(render_report(data))
    (RESULTS / "size_summary.md").write_text(render_summary(data))
    log(f"wrote {REPORT.relative_to(ROOT)} and {(RESULTS / 'size_summary.md').relative_to(ROOT)}")


def main() -> int:
    if sys.argv[1:] == ["--render-only"]:  # re-render the last measurements (no build)
        data = json.loads((RESULTS / "size.json").read_text())
        data.setdefault("bases", base_identities({s["base"] for s in data["steps"].values()}))
        write_outputs(data)
        return 0
    RESULTS.mkdir(exist_ok=True)
    log("timing numpy's source build (no cache)")
    numpy_build = time_numpy_build()
    measures: dict[str, ImageMeasure] = {}
    build_seconds: dict[str, float] = {}
    for step in STEPS:
        image, build_seconds[step.name] = build(step)
        log(f"measuring {image}")
        measures[step.name] = measure(image, base_of(image))
        if step.name == UNTRIMMED:
            removals = trim_removals(image)
    log("measuring S3 clients")
    clients = {label: installed_size(pkgs) for label, pkgs in S3_CLIENTS.items()}
    data = {
        "steps": {step.name: {"what": step.what, "build_seconds": round(build_seconds[step.name], 1),
                              **asdict(measures[step.name])} for step in STEPS},
        "numpy_build": numpy_build,
        "trim_removals": removals,
        "s3_clients": {label: {"mb": mb, "distributions": dists} for label, (mb, dists) in clients.items()},
        "official_bases": OFFICIAL,
        "bases": base_identities({m.base for m in measures.values()}),
        "settings": provenance(),
    }
    write_outputs(data)
    failed = [name for name, m in measures.items() if m.smoke != "ok"]
    if failed:
        log(f"smoke test FAILED for {failed}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
