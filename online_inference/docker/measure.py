"""Measurements of built images: sizes (uncompressed, and gzipped as a registry stores them),
what a Dockerfile adds above its base, per-layer history, largest installed packages, and a smoke
test with the container's start-up time (start → /health 200)."""

from __future__ import annotations

import gzip
import io
import json
import statistics
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from online_inference.docker.dockercli import DOCKER, docker, inspect, running

MB = 1e6
DOCS_ASSETS_PACKAGE = "fastapi_offline"  # Swagger UI's files, served by the service (app/docs_ui.py)
PACKAGES_SCRIPT = """
import json, os, sys
root = sys.argv[1]
sizes = {}
for name in os.listdir(root):
    path = os.path.join(root, name)
    total = os.path.getsize(path) if os.path.isfile(path) else sum(
        os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)
    sizes[name] = total
print(json.dumps(sizes))
"""


@dataclass
class ImageMeasure:
    image: str
    base: str
    size_mb: float
    base_size_mb: float
    added_mb: float
    gzip_mb: float
    added_gzip_mb: float
    layers: list[tuple[float, str]] = field(default_factory=list)
    packages: list[tuple[str, float]] = field(default_factory=list)
    start_seconds: float | None = None
    smoke: str = "not run"
    docs_assets_mb: float | None = None  # what /docs's assets (the fastapi-offline package) cost


def base_of(image: str) -> str:
    """The runtime base an image was built on (every image of ours carries it as an OCI label)."""
    return inspect(image)["Config"]["Labels"]["org.opencontainers.image.base.name"]  # type: ignore[no-any-return]


def added_mb(image: str, base: str | None = None) -> float:
    """What the Dockerfile added above its runtime base, uncompressed."""
    return (inspect(image)["Size"] - inspect(base or base_of(image))["Size"]) / MB


def layer_gzip_sizes(image: str) -> dict[str, int]:
    """diff_id → gzip -6 size of that layer (what a registry stores, near enough)."""
    sizes: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "image.tar"
        subprocess.run([DOCKER, "save", "-o", str(archive), image], check=True, timeout=900)
        with tarfile.open(archive) as saved:
            manifest = json.load(saved.extractfile("manifest.json"))[0]  # type: ignore[arg-type]
            config = json.load(saved.extractfile(manifest["Config"]))  # type: ignore[arg-type]
            for path, diff_id in zip(manifest["Layers"], config["rootfs"]["diff_ids"]):
                raw = saved.extractfile(path).read()  # type: ignore[union-attr]
                buffer = io.BytesIO()
                with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=6, mtime=0) as zipped:
                    zipped.write(raw)
                sizes[diff_id] = len(buffer.getvalue())
    return sizes


def added_layers(image: str, base: str) -> list[str]:
    base_layers = set(inspect(base)["RootFS"]["Layers"])
    return [layer for layer in inspect(image)["RootFS"]["Layers"] if layer not in base_layers]


def history(image: str, base: str) -> list[tuple[float, str]]:
    """(MB, instruction) of the layers the Dockerfile added, newest first, empty ones left out."""
    own = len(inspect(image)["RootFS"]["Layers"]) - len(inspect(base)["RootFS"]["Layers"])
    rows = json.loads("[" + ",".join(docker("history", "--no-trunc", "--format", "{{json .}}", image).stdout.split("\n")[:-1]) + "]")
    out = []
    for row in rows:
        size = parse_size(row["Size"])
        if size > 0:
            out.append((size / MB, " ".join(row["CreatedBy"].replace("|", "\\|").split())[:140]))
    return out[: max(own, 0)]


def parse_size(text: str) -> float:
    units = {"B": 1, "kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9}
    for unit in sorted(units, key=len, reverse=True):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * units[unit]
    return 0.0


def package_sizes(image: str) -> dict[str, float]:
    """MB of each entry of the image's site-packages."""
    site = docker("run", "--rm", "--network", "host", "--entrypoint", "/venv/bin/python3", image, "-c",
                  "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip()
    sizes = json.loads(docker("run", "--rm", "--network", "host", "--entrypoint", "/venv/bin/python3", image,
                              "-c", PACKAGES_SCRIPT, site).stdout)
    return {name: size / MB for name, size in sizes.items()}


def largest(sizes: dict[str, float], top: int = 12) -> list[tuple[str, float]]:
    return sorted(sizes.items(), key=lambda kv: -kv[1])[:top]


def smoke_and_start_time(image: str, runs: int = 5) -> tuple[str, float]:
    """Start the container ``runs`` times; each must answer /health 200 and one prediction.
    Returns ("ok", median seconds from `docker run` to /health 200)."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        with running(image, "--read-only", "--tmpfs", "/tmp") as container:
            times.append(time.perf_counter() - started)
            card = httpx.get(container.url + "/model", timeout=5).json()
            row = [f["example"] for f in card["features"]]
            body = {"features": [f["name"] for f in card["features"]], "data": [row]}
            response = httpx.post(container.url + "/predict", json=body, timeout=5)
            if response.status_code != 200 or "predictions" not in response.json():
                return f"FAILED: {response.status_code} {response.text[:200]}", float("nan")
    return "ok", statistics.median(times)


def measure(image: str, base: str, smoke: bool = True, packages: bool = True) -> ImageMeasure:
    gz = layer_gzip_sizes(image)
    own = added_layers(image, base)
    result = ImageMeasure(
        image=image, base=base, size_mb=inspect(image)["Size"] / MB, base_size_mb=inspect(base)["Size"] / MB,
        added_mb=added_mb(image, base),
        gzip_mb=sum(gz.values()) / MB, added_gzip_mb=sum(gz[layer] for layer in own) / MB,
        layers=history(image, base),
    )
    if packages:
        sizes = package_sizes(image)
        result.packages = largest(sizes)
        result.docs_assets_mb = sizes.get(DOCS_ASSETS_PACKAGE, 0.0)
    if smoke:
        result.smoke, result.start_seconds = smoke_and_start_time(image)
    return result
