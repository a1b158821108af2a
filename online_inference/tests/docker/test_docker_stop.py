"""Spec: `docker stop` on each image drains as SIGTERM does (tests/reliability/test_drain.py): every
client that connected before it is answered, and the container exits 0."""

from __future__ import annotations

import pytest

from online_inference.docker.dockercli import HARDENED, docker, running
from online_inference.tests.reliability.test_drain import GRACE, check_drain


@pytest.mark.parametrize("variant", ["full", "slim", "distroless"])
def test_docker_stop_answers_every_client_and_exits_0(images: dict[str, str], variant: str) -> None:
    with running(images[variant], *HARDENED, env={"TIMEOUT_GRACEFUL_SHUTDOWN": str(GRACE)}) as container:
        def docker_stop() -> int:
            docker("stop", "-t", str(GRACE + 5), container.name)
            return int(docker("inspect", "-f", "{{.State.ExitCode}}", container.name).stdout.strip())

        check_drain(container.url, docker_stop)
