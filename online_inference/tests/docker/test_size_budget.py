"""Spec: size budgets, enforced on the images CI builds: the distroless image adds ≤ 75 MB above
its runtime base and gzips whole to ≤ 48 MB (issue #30's budget, with gRPC in every image); the
slim image adds ≤ 85 MB; every image carries the OCI label naming its runtime base."""

from __future__ import annotations

import pytest

from online_inference.docker.dockercli import inspect
from online_inference.docker.measure import MB, added_mb, base_of, layer_gzip_sizes
from online_inference.docker.size_render import BUDGETS


@pytest.mark.parametrize("variant", ["full", "slim", "distroless"])
def test_every_image_names_its_runtime_base(images: dict[str, str], variant: str) -> None:
    assert inspect(base_of(images[variant]))["Id"]


def test_distroless_adds_at_most_75_mb(images: dict[str, str]) -> None:
    assert added_mb(images["distroless"]) <= BUDGETS["distroless_added_mb"]


def test_distroless_gzips_to_at_most_48_mb(images: dict[str, str]) -> None:
    assert sum(layer_gzip_sizes(images["distroless"]).values()) / MB <= BUDGETS["distroless_gzip_mb"]


def test_slim_adds_at_most_85_mb(images: dict[str, str]) -> None:
    assert added_mb(images["slim"]) <= BUDGETS["slim_added_mb"]
