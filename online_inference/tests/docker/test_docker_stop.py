"""Spec: `docker stop` under load lets every in-flight request finish and the container exits 0."""

from __future__ import annotations

import pytest

from online_inference.docker.dockercli import HARDENED, docker, running
from online_inference.tests.reliability.test_shutdown import GRACE, check_graceful_stop


@pytest.mark.parametrize("variant", ["full", "slim", "distroless"])
def test_docker_stop_finishes_in_flight_requests_and_exits_0(images: dict[str, str], variant: str) -> None:
    with running(images[variant], *HARDENED, env={"TIMEOUT_GRACEFUL_SHUTDOWN": str(GRACE)}) as container:
        def docker_stop() -> int:
            docker("stop", "-t", str(GRACE + 5), container.name)
            return int(docker("inspect", "-f", "{{.State.ExitCode}}", container.name).stdout.strip())

        check_graceful_stop(container.url, docker_stop)
