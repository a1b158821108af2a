"""Markdown for the size study, rendered only from the measurements in ``results/size.json``."""

from __future__ import annotations

from typing import Any

from online_inference.docker.trim_venv import REMOVALS

SHIPPED = ("full", "slim", "distroless")
STAND_IN_OF = {
    "standin/python:3.11": "python:3.11",
    "standin/python:3.11-slim": "python:3.11-slim",
    "standin/distroless-python3-debian12:nonroot": "gcr.io/distroless/python3-debian12:nonroot",
}
# Issue #30 set the distroless budget with gRPC in every image (grpclib, h2 and protobuf: 1 MB gzipped).
BUDGETS = {"distroless_added_mb": 75, "distroless_gzip_mb": 48, "slim_added_mb": 85}
START_GOAL_SECONDS = 1.5  # container start → /health 200, median (reported, not a unit test: timings are noisy)


def mb(value: float | None) -> str:
    return "—" if value is None else f"{value:,.1f}"


def official(step: dict[str, Any], bases: dict[str, Any]) -> tuple[str, float, str] | None:
    name = STAND_IN_OF.get(step["base"], step["base"])
    quoted = bases.get(name)
    if not isinstance(quoted, dict):
        return None
    return name, quoted["mb"] + step["added_mb"], quoted["source"]


def steps_table(steps: dict[str, Any]) -> list[str]:
    rows = [
        "| Step | What changed | Image MB | Added above base MB | gzip MB (whole) | gzip MB (added) | vs previous | Start → /health 200 (median of 5) | Build s | Smoke |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    previous = None
    for name, s in steps.items():
        delta = "" if previous is None else f"{s['added_mb'] - previous:+,.1f}"
        start = "—" if s["start_seconds"] is None else f"{s['start_seconds']:.2f} s"
        rows.append(
            f"| `{name}` | {s['what']} | {mb(s['size_mb'])} | {mb(s['added_mb'])} | {mb(s['gzip_mb'])} | "
            f"{mb(s['added_gzip_mb'])} | {delta} | {start} | {s['build_seconds']:.0f} | {s['smoke']} |"
        )
        previous = s["added_mb"]
    return rows


def headline(data: dict[str, Any]) -> list[str]:
    steps = data["steps"]
    full, slim, dl = steps["full"], steps["slim"], steps["distroless"]
    lines = [
        f"- **distroless adds {mb(dl['added_mb'])} MB** above its runtime base (budget ≤ {BUDGETS['distroless_added_mb']} MB), "
        f"and the whole image gzips to **{mb(dl['gzip_mb'])} MB** "
        f"(budget ≤ {BUDGETS['distroless_gzip_mb']} MB); slim adds {mb(slim['added_mb'])} MB (budget ≤ {BUDGETS['slim_added_mb']} MB).",
        f"- Full → distroless: {mb(full['size_mb'])} MB → {mb(dl['size_mb'])} MB here, "
        f"**{full['size_mb'] / dl['size_mb']:.1f}×** smaller (gzipped {full['gzip_mb'] / dl['gzip_mb']:.1f}×); "
        f"what the Dockerfiles add: {mb(full['added_mb'])} MB → {mb(dl['added_mb'])} MB ({full['added_mb'] / dl['added_mb']:.1f}×).",
        "- Container start → `/health` 200, median of 5 read-only starts (goal ≤ "
        f"{START_GOAL_SECONDS} s): " + ", ".join(f"{name} {steps[name]['start_seconds']:.2f} s" for name in SHIPPED) + ".",
    ]
    if all(steps[name].get("docs_assets_mb") is not None for name in SHIPPED):
        lines.append("- Swagger UI's assets (`/docs` offline; the `fastapi-offline` package): "
                     + ", ".join(f"{name} {mb(steps[name]['docs_assets_mb'])} MB" for name in SHIPPED) + ".")
    eq_full, eq_dl = official(full, data["official_bases"]), official(dl, data["official_bases"])
    if eq_full and eq_dl:
        lines.append(
            f"- Official-equivalent totals (quoted official base + the measured added layers): full ≈ {mb(eq_full[1])} MB, "
            f"distroless ≈ {mb(eq_dl[1])} MB: **{eq_full[1] / eq_dl[1]:.1f}×** (goal ≥ 8×)."
        )
    return lines


def render_summary(data: dict[str, Any]) -> str:
    steps = data["steps"]
    rows = ["| Image | Size MB | Added above base MB | gzip MB | Start → /health 200 |", "|---|---:|---:|---:|---:|"]
    for name in SHIPPED:
        s = steps[name]
        rows.append(f"| `heart-inference:{name}` | {mb(s['size_mb'])} | {mb(s['added_mb'])} | {mb(s['gzip_mb'])} | {s['start_seconds']:.2f} s |")
    return "\n".join([
        f"Measured by `make size-report`{measured_on(data)} (stand-in bases built from Debian's packages; see "
        "[SIZE_REPORT.md](online_inference/SIZE_REPORT.md) for every step, layer and package):",
        "",
        *rows,
        "",
        *headline(data),
        "",
        what_did_it(data),
    ])


def measured_on(data: dict[str, Any]) -> str:
    settings = data.get("settings")
    return f" on commit `{settings['commit'][:12]}` ({settings['machine']})" if settings else " (commit not recorded)"


def package_mb(step: dict[str, Any], name: str) -> float:
    return next((mb_ for package, mb_ in step["packages"] if package == name), 0.0)


def what_did_it(data: dict[str, Any]) -> str:
    """The story of the steps, its figures read from the measured packages of the untrimmed and
    the trimmed slim images, and from the S3 clients measured side by side."""
    untrimmed, trimmed, shipped = data["steps"]["slim-multistage"], data["steps"]["slim-trimmed"], data["steps"]["slim"]
    clients = data["s3_clients"]
    chosen = next(value["mb"] for name, value in clients.items() if "chosen" in name)
    return (
        "What did it: ONNX Runtime instead of scikit-learn/scipy/pandas; a multi-stage build (no pip, "
        "caches or compilers); distroless; removing what the runtime never loads (ONNX Runtime's unused "
        f"C-API library and tools: onnxruntime {mb(package_mb(untrimmed, 'onnxruntime'))} → "
        f"{mb(package_mb(trimmed, 'onnxruntime'))} MB; numpy's tests and never-imported subpackages, pip/setuptools); "
        f"stripping debug sections from uvloop and httptools (uvloop {mb(package_mb(untrimmed, 'uvloop'))} → "
        f"{mb(package_mb(trimmed, 'uvloop'))} MB) but never from a wheel's vendored libraries; bytecode in place of the "
        "sources of the venv modules a start loads (smaller, and the start no longer compiles them); numpy built "
        "from source without the BLAS it never uses (numpy and its vendored libraries "
        f"{mb(package_mb(trimmed, 'numpy') + package_mb(trimmed, 'numpy.libs'))} → "
        f"{mb(package_mb(shipped, 'numpy') + package_mb(shipped, 'numpy.libs'))} MB); and the "
        f"{mb(chosen)} MB S3 client (httpx-auth) instead of boto3 ({mb(clients['boto3']['mb'])} MB)."
    )


def numpy_section(data: dict[str, Any]) -> list[str]:
    """numpy from its source distribution: the steps, numpy's packages in each, the build time."""
    steps, build = data["steps"], data["numpy_build"]
    rows = [("PyPI's wheel (OpenBLAS, libgfortran bundled)", "distroless-sourceless"),
            ("source, `-Dblas=none -Dlapack=none`", "distroless-noblas"),
            (f"source, `{build['options']}` (shipped)", "distroless")]
    return [
        "## numpy without BLAS",
        "",
        "ONNX Runtime runs the model; numpy only holds arrays, compares them with the bounds and rounds, "
        "and no code path of the service calls a numpy function that uses BLAS or LAPACK (`dot`, `matmul`, "
        "`linalg`...: `tests/app/test_runtime_imports.py` checks the service's code for them). So the slim and "
        "distroless images build numpy from its source distribution, at the locked version and hash-checked, "
        "without BLAS or LAPACK (numpy keeps its own slow fallback, never called), nor the SVML math kernels, "
        "x86-simd-sort and the dispatched SIMD variants, which the service never calls either, optimised for size "
        "and stripped (`online_inference/docker/build_numpy.sh`; the trim drops `lapack_lite`, which nothing "
        "imports; the full image keeps PyPI's wheels). Each image's tests then check the model's answers, bit for bit.",
        "",
        "| numpy | numpy MB | numpy.libs MB | Added MB | gzip MB (whole) | Start → /health 200 |",
        "|---|---:|---:|---:|---:|---:|",
        *[f"| {label} | {mb(package_mb(steps[name], 'numpy'))} | {mb(package_mb(steps[name], 'numpy.libs'))} | "
          f"{mb(steps[name]['added_mb'])} | {mb(steps[name]['gzip_mb'])} | {steps[name]['start_seconds']:.2f} s |"
          for label, name in rows],
        "",
        f"The source build takes **{build['seconds']:.0f} s** on this machine (the `numpy-source` stage alone, "
        "without BuildKit's cache). BuildKit caches the stage, so an image build compiles numpy at most once "
        "per base and options (slim and distroless share it when their builder bases are the same image, as "
        "with the stand-ins), and a rebuild after a code change does not compile it again. Its speed: "
        "`make bench`.",
    ]


def render_report(data: dict[str, Any]) -> str:
    steps, bases = data["steps"], data["official_bases"]
    out = [
        "# Image-size study",
        "",
        "Generated by `make size-report` (`online_inference/docker/size_study.py`) — every figure below is "
        "measured by that script; rerun it to refresh. Sizes in MB (10^6 bytes). *Image* is `docker image "
        "inspect` `.Size`; *added* is what the Dockerfile adds above its runtime base; *gzip* is each layer "
        "from `docker save` gzipped at level 6, as a registry stores it. Every image was started read-only "
        "five times and had to answer `/health` 200 and a prediction (*Smoke*).",
        "",
        "## Summary",
        "",
        *headline(data),
        "",
        "![MB added above the base, and gzipped, per step](docker/results/size.svg)",
        "",
        "## Steps",
        "",
        *steps_table(steps),
        "",
        "## Bases: stand-ins and the official images",
        "",
        "No image can be pulled on the machines this was measured on, so the bases are stand-ins built "
        "with mmdebstrap from the same Debian 12 packages as the official images "
        "(`online_inference/docker/stand_in_bases.sh`); what a Dockerfile adds does not depend on them.",
        "",
        "| Stand-in base | Measured MB | Official image | Quoted MB | Source | Official-equivalent step totals |",
        "|---|---:|---|---:|---|---|",
    ]
    seen: dict[str, list[str]] = {}
    for name, s in steps.items():
        seen.setdefault(s["base"], []).append(name)
    for base, names in seen.items():
        eq = official(steps[names[0]], bases)
        base_mb = steps[names[0]]["base_size_mb"]
        if eq:
            totals = ", ".join(f"`{n}` ≈ {mb(official(steps[n], bases)[1])}" for n in names)  # type: ignore[index]
            out.append(f"| `{base}` | {mb(base_mb)} | `{eq[0]}` | {bases[eq[0]]['mb']} | {eq[2]} | {totals} |")
        else:
            out.append(f"| `{base}` | {mb(base_mb)} | — | — | — | — |")
    out += ["", f"_{bases.get('note', '')}_", "", "Base images used (image IDs: the digest of each image's config):", ""]
    out += ["| Base | Image ID | Registry digests | Created |", "|---|---|---|---|"]
    for base, ident in data.get("bases", {}).items():
        digests = ", ".join(f"`{d}`" for d in ident["repo_digests"]) or "— (built locally, never pulled)"
        out.append(f"| `{base}` | `{ident['id']}` | {digests} | {str(ident['created'])[:19]} |")
    out.append("")
    out += ["## Layers the shipped images add", ""]
    for name in SHIPPED:
        out += [f"### `{name}`", "", "| MB | Instruction |", "|---:|---|"]
        out += [f"| {mb(size)} | `{cmd}` |" for size, cmd in steps[name]["layers"]]
        out.append("")
    out += ["## Largest installed packages", ""]
    for name in ("full", "slim-multistage", "distroless"):
        out += [f"### `{name}`", "", "| Package | MB |", "|---|---:|"]
        out += [f"| `{pkg}` | {mb(size)} |" for pkg, size in steps[name]["packages"]]
        out.append("")
    out += [
        "## What the trim removes, and why it is safe",
        "",
        "`online_inference/docker/trim_venv.py` deletes these from the runtime venv, strips debug sections "
        "from extension modules that carry them, and then imports every dependency and runs the model "
        "(the build fails if anything broke). Measured effect: "
        f"`slim-multistage` → `slim-trimmed` {mb(steps['slim-multistage']['added_mb'] - steps['slim-trimmed']['added_mb'])} MB, "
        f"`distroless-multistage` → `distroless-sourceless` "
        f"{mb(steps['distroless-multistage']['added_mb'] - steps['distroless-sourceless']['added_mb'])} MB.",
        "",
        "Each removal's MB is measured on the shipped distroless image built without the trim "
        "(`distroless-untrimmed`), a file counted once, under the first removal that matches it:",
        "",
        "| Removed | MB | Why |",
        "|---|---:|---|",
        *[f"| `{pattern}` | {mb(data['trim_removals'].get(pattern))} | {why} |" for pattern, why in REMOVALS],
        "",
        "Traps found and avoided: `strip` on auditwheel-repaired libraries (numpy's vendored `numpy.libs`, "
        "OpenBLAS included) breaks them — numpy then fails to import — so only extension modules with "
        "`.debug_*` sections outside any `*.libs` directory are stripped, and only of debug sections. "
        "numpy's PyPI wheel links its bundled OpenBLAS from its core, so the trim cannot drop it: the slim "
        "and distroless images build numpy without it instead (below).",
        "",
        *numpy_section(data),
        "",
        "## `.pyc` policy",
        "",
    ]
    rows = [
        ("none (`PYC=none`)", steps["distroless-nopyc"]),
        ("for every module (`PYC=all`)", steps["distroless-allpyc"]),
        ("for what a start loads (`PYC=loaded`)", steps["distroless-loadedpyc"]),
        ("for what a start loads, the venv's in place of its source (shipped)", steps["distroless-sourceless"]),
    ]
    none, loaded, shipped = steps["distroless-nopyc"], steps["distroless-loadedpyc"], steps["distroless-sourceless"]
    out += [
        "Measured on the distroless image with numpy's PyPI wheel (`online_inference/precompile.py` applies the policy at build time; "
        "a read-only image cannot cache bytecode at run time, so without it every start compiles what it imports):",
        "",
        "| .pyc | Added MB | Start → /health 200 (median of 5) |",
        "|---|---:|---:|",
        *[f"| {label} | {mb(s['added_mb'])} | {s['start_seconds']:.2f} s |" for label, s in rows],
        "",
        f"Bytecode for what a start loads costs {mb(loaded['added_mb'] - none['added_mb'])} MB beside the sources and "
        f"changes the start by {loaded['start_seconds'] - none['start_seconds']:+.2f} s. Shipped instead "
        "(`VENV_PYC=sourceless`, the builder stage): each venv module a start loads becomes a legacy `module.pyc` in "
        "place of `module.py`, compiled without docstrings (asserts kept), so its bytecode is smaller than the source "
        "it replaces; the runtime stage then adds `.pyc` only for the standard library's modules (the distroless base "
        "ships none) and the service's own. Against no `.pyc` that costs "
        f"{mb(shipped['added_mb'] - none['added_mb'])} MB and changes the start by "
        f"{shipped['start_seconds'] - none['start_seconds']:+.2f} s. Modules that read their own source at start "
        "keep it (anyio's lazy importer parses its package's `__init__.py`; without its source anyio imports every "
        "submodule eagerly), and the build fails unless a fresh start then loads the same modules and serves the "
        "same OpenAPI document as before. Tracebacks through those modules keep file names and line numbers but "
        "cannot quote their source lines.",
        "",
        "## S3 client: installed size with dependencies",
        "",
        "| Client | MB | Distributions |",
        "|---|---:|---|",
        *[f"| {label} | {mb(c['mb'])} | {', '.join(c['distributions'])} |" for label, c in data["s3_clients"].items()],
        "",
        "httpx is also the client script's HTTP library, so the S3 path costs the service only "
        "httpx-auth and httpx's own dependencies; signing is httpx-auth's SigV4, not hand-written.",
        "",
    ]
    return "\n".join(out)
