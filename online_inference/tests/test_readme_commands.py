"""Spec: every command the README shows is accounted for: run verbatim by a test (from the repo
root, or from a fresh clone), or named here with the reason it cannot run on a CI machine (a
placeholder to fill in, a cloud or a registry out of reach). A command added to the README without
either fails this test."""

from __future__ import annotations

import re

import pytest

from online_inference.devtools.paths import README

RUN_BY_TESTS = {
    r"make serve\b": "tests/test_fresh_clone.py (PORT=0), and `make test` itself runs in CI",
    r"make test\b": "CI: .ci/run ends with it",
    r"python3 -m venv /tmp/heart && ": "tests/test_fresh_clone.py, only the venv's directory differs",
    r"curl -s (-X POST )?http://127\.0\.0\.1:8000/": "tests/test_readme.py, only the port differs, answers compared",
    r"\.venv/bin/python -m online_inference\.client ": "tests/test_readme.py, only the port and the output path differ",
    r"sha256sum online_inference/model/heart\.onnx": "tests/test_readme_commands.py, below",
    r"make images\b": "tests/docker/conftest.py (OFFLINE=1: stand-in bases, as no image can be pulled here)",
    r"(make model SPEC=|MODEL_URI=file://\$PWD/my-model\.onnx make serve$|make client CSV=my-table\.csv$)":
        "tests/test_own_model.py, on a toy table it makes: only the files' paths and the port differ",
}
RUN_BY_TESTS.update({
    r"(mkdir -p secrets && )?make api-key NAME=": "tests/test_expose_safely.py, its line into the keys file",
    r"openssl req -x509 ": "tests/test_expose_safely.py, verbatim in a fresh folder",
    r"KEY=<the key printed above>$": "tests/test_expose_safely.py, with the key make api-key printed",
    r"curl -s --cacert secrets/tls\.crt ": "tests/test_expose_safely.py, only the port differs",
})
NOT_RUNNABLE_HERE = {
    r"<sha256>|<user>|<ingress>|my-bucket": "a placeholder for the user's own value",
    r"DOCKER_BUILDKIT=1 docker build ": "pulls the official bases; `make images` builds the same Dockerfiles on stand-ins",
    r"docker run --rm -p 8000:8000 ": "publishes a port through Docker's bridge, which CI's engine runs without; "
                                      "tests/docker runs the same images with host networking",
    r"docker login": "Docker Hub is out of reach; tests/docker/test_publish.py pushes to a local registry",
    r"kubectl ": "needs a cluster; tests/test_deploy.py validates the manifests",
    r"^grpcurl ": "grpcurl is not packaged for Debian 12, and its releases are on GitHub, out of reach; "
                  "tests/grpc/test_open_inference_protocol.py makes the same calls (reflection's list, "
                  "ModelMetadata, Health/Check) through grpcio's clients",
    r"^docker compose ": "CI has no Compose plugin, and Compose's network is a bridge, which CI's engine runs without; "
                         "tests/docker/test_rolling_restart.py "
                         "runs the same haproxy.cfg and image with host networking, and checks compose.yaml",
}


def commands() -> list[str]:
    found = []
    for block in re.findall(r"```bash\n(.*?)```", README.read_text(), re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if line.strip():
                found.append(" ".join(line.split()))
    return found


@pytest.mark.parametrize("command", commands(), ids=lambda c: c[:50])
def test_every_readme_command_is_run_by_a_test_or_says_why_not(command: str) -> None:
    runs = [how for pattern, how in RUN_BY_TESTS.items() if re.match(pattern, command)]
    cannot = [why for pattern, why in NOT_RUNNABLE_HERE.items() if re.search(pattern, command)]
    assert runs or cannot, f"no test runs this README command: {command}"


def test_the_model_checksum_command_prints_the_bundled_models_sha256() -> None:
    import hashlib
    import subprocess

    from online_inference.app.settings import BUNDLED_MODEL

    (command,) = [c for c in commands() if c.startswith("sha256sum ")]
    result = subprocess.run(command.split("#")[0], shell=True, cwd=README.parent, capture_output=True, text=True, check=True)
    assert result.stdout.split()[0] == hashlib.sha256(BUNDLED_MODEL.read_bytes()).hexdigest()
