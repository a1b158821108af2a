"""Spec: the Kubernetes and KServe manifests validate offline against the Kubernetes schemas; the
InferenceService's predictor runs the same container as the Deployment; probes point at real
routes; a stop drains within the grace period; memory is sized from the measured RSS; the TLS and
API keys patch gives a valid Deployment whose probes go over HTTPS to open endpoints; checkov
passes on manifests and Dockerfiles, every suppression with a reason."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from online_inference.app.settings import Settings
from online_inference.app.compose import create_app
from online_inference.bench.run_bench import RESULTS as BENCH_RESULTS

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "online_inference" / "deploy"
K8S_VERSION = "1.33"
MANIFESTS = sorted((DEPLOY / "kubernetes").glob("*.yaml"))
KSERVE = DEPLOY / "kserve" / "inferenceservice.yaml"


def load_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def objects() -> list[dict[str, Any]]:
    return [obj for path in MANIFESTS for obj in load_all(path)]


def by_kind(kind: str) -> dict[str, Any]:
    return next(obj for obj in objects() if obj["kind"] == kind)


def deployment_pod() -> dict[str, Any]:
    return by_kind("Deployment")["spec"]["template"]["spec"]


def predictor() -> dict[str, Any]:
    return load_all(KSERVE)[0]["spec"]["predictor"]


@pytest.mark.parametrize("obj", objects(), ids=lambda o: f"{o['kind']}/{o['metadata']['name']}")
def test_manifest_validates_against_the_kubernetes_schema(obj: dict[str, Any]) -> None:
    kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def test_the_expected_objects_are_shipped() -> None:
    kinds = {obj["kind"] for obj in objects()}
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy"} <= kinds


def test_kserve_predictor_is_a_valid_pod_spec() -> None:
    spec = {k: v for k, v in predictor().items() if k not in ("minReplicas", "maxReplicas")}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "predictor"}, "spec": spec}
    kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
    assert load_all(KSERVE)[0]["apiVersion"] == "serving.kserve.io/v1beta1"


def test_kserve_predictor_runs_the_deployments_container() -> None:
    ours = copy.deepcopy(deployment_pod()["containers"][0])
    theirs = copy.deepcopy(predictor()["containers"][0])
    assert theirs.pop("name") == "kserve-container"
    ours.pop("name")
    assert theirs == ours, "image, env, probes, port, resources and security context must match"
    for key in ("securityContext", "volumes", "terminationGracePeriodSeconds", "automountServiceAccountToken"):
        assert predictor()[key] == deployment_pod()[key], key


def test_probes_point_at_real_routes() -> None:
    """Readiness and liveness on HTTP routes the service has; startup through kubelet's own gRPC
    probe (grpc.health.v1, the server's status: ""), on the port the service listens on for gRPC."""
    paths = set(create_app(Settings(environment={})).app.openapi()["paths"])
    container = deployment_pod()["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] in paths
    assert container["startupProbe"]["grpc"] == {"port": Settings(environment={}).GRPC_PORT}


def test_the_pod_and_its_service_expose_the_ports_the_service_listens_on() -> None:
    settings = Settings(environment={})
    ports = {p["name"]: p["containerPort"] for p in deployment_pod()["containers"][0]["ports"]}
    assert ports == {"http": settings.PORT, "grpc": settings.GRPC_PORT}
    service = {p["name"]: p for p in by_kind("Service")["spec"]["ports"]}
    assert {name: p["targetPort"] for name, p in service.items()} == {"http": "http", "grpc": "grpc"}
    assert service["grpc"]["appProtocol"] == "kubernetes.io/h2c"
    allowed = {p["port"] for rule in by_kind("NetworkPolicy")["spec"]["ingress"] for p in rule["ports"]}
    assert allowed == set(ports.values())


def test_startup_probe_outlasts_a_download_with_all_retries() -> None:
    s = Settings(environment={})
    probe = deployment_pod()["containers"][0]["startupProbe"]
    backoff = sum(s.MODEL_LOAD_BACKOFF_SECONDS * 2**i for i in range(s.MODEL_LOAD_ATTEMPTS - 1))
    worst = s.MODEL_LOAD_ATTEMPTS * s.MODEL_LOAD_TIMEOUT_SECONDS + backoff
    assert probe["periodSeconds"] * probe["failureThreshold"] >= worst


def test_a_stop_drains_within_the_grace_period() -> None:
    """preStop: the pod leaves the Service's endpoints while the server still serves. Then SIGTERM:
    readiness fails at once (/health 503 draining) and the server answers every connection it has
    within TIMEOUT_GRACEFUL_SHUTDOWN, which outlasts a request begun just before the signal (its
    head's and its body's deadlines) and an idle connection's keep-alive; the grace period outlasts both."""
    s, pod = Settings(environment={}), deployment_pod()
    container = pod["containers"][0]
    sleep = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert sleep >= container["readinessProbe"]["periodSeconds"]
    assert s.TIMEOUT_GRACEFUL_SHUTDOWN >= max(s.TIMEOUT_HEADERS + s.TIMEOUT_BODY, s.TIMEOUT_KEEP_ALIVE)
    assert pod["terminationGracePeriodSeconds"] >= sleep + s.TIMEOUT_GRACEFUL_SHUTDOWN + 5
    assert not {e["name"] for e in container["env"]} & {"TIMEOUT_GRACEFUL_SHUTDOWN", "TIMEOUT_BODY", "TIMEOUT_HEADERS"}


def test_pod_is_hardened() -> None:
    pod = deployment_pod()
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] == 65532
    assert container["securityContext"]["readOnlyRootFilesystem"]
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/tmp"}
    secret_env = {e["name"] for e in container["env"] if "secretKeyRef" in e.get("valueFrom", {})}
    assert {"MODEL_URI", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= secret_env


def memory_mib(quantity: str) -> float:
    number, unit = re.fullmatch(r"(\d+)(Mi|Gi)", quantity).groups()  # type: ignore[union-attr]
    return int(number) * (1024 if unit == "Gi" else 1)


def test_memory_is_sized_from_the_measured_rss() -> None:
    results = BENCH_RESULTS / "bench.json"
    if not results.exists():
        pytest.fail("no benchmark results: run `make bench`")
    rss = json.loads(results.read_text())["peak_rss_mb"]
    peak_mb = rss["onnx"]
    resources = deployment_pod()["containers"][0]["resources"]
    assert memory_mib(resources["requests"]["memory"]) >= peak_mb * 1.2
    assert memory_mib(resources["limits"]["memory"]) >= peak_mb * 2


def test_the_memory_limit_holds_the_idle_service_and_the_whole_budget_of_requests_in_flight() -> None:
    """The same measured figures size both: the idle service's RSS (bench/memory.py) plus the
    default MEMORY_BUDGET_BYTES plus a margin for what no charge counts (allocator slack, the
    idle connections: about 7.7 KB each) stays within the pod's limit. The crowd test
    (tests/reliability/test_crowd.py) holds the real process to the same limit."""
    idle_mib = max(json.loads((BENCH_RESULTS / "memory.json").read_text())["fixed"]["idle_rss_bytes"]) / 2**20
    budget_mib = Settings(environment={}).MEMORY_BUDGET_BYTES / 2**20
    limit_mib = memory_mib(deployment_pod()["containers"][0]["resources"]["limits"]["memory"])
    assert idle_mib + budget_mib + 0.1 * limit_mib <= limit_mib, (idle_mib, budget_mib, limit_mib)


def checkov(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("checkov") or str(Path(sys.executable).parent / "checkov")
    return subprocess.run([binary, "--compact", "--quiet", "--skip-download", "--output", "json", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)


@pytest.mark.parametrize(("directory", "framework"), [("online_inference/deploy", "kubernetes"), ("online_inference", "dockerfile")])
def test_checkov_passes(directory: str, framework: str) -> None:
    result = checkov("-d", directory, "--framework", framework)
    report = json.loads(result.stdout)
    summary = report["summary"] if isinstance(report, dict) else report[0]["summary"]
    assert summary["failed"] == 0 and summary["passed"] > 0, result.stdout[-3000:]


def test_every_checkov_suppression_has_a_reason() -> None:
    texts = [p.read_text() for p in [*MANIFESTS, KSERVE, *(ROOT / "online_inference").rglob("Dockerfile*")]]
    for text in texts:
        for match in re.finditer(r"checkov:skip=(CKV\w+):?(.*)", text):
            assert len(match.group(2).strip()) > 20, match.group(0)
        for match in re.finditer(r'checkov\.io/skip\d+: "(CKV\w+)=(.*)"', text):
            assert len(match.group(2).strip()) > 20, match.group(0)


SECURE_PATCH = DEPLOY / "kubernetes" / "secure" / "tls-and-keys.patch.yaml"
MERGE_KEYS = {"containers": "name", "env": "name", "volumes": "name", "volumeMounts": "mountPath", "ports": "containerPort"}


def strategic_merge(base: Any, patch: Any, field: str = "") -> Any:
    """What ``kubectl patch`` (a strategic merge patch) does to these manifests: objects merged
    key by key (null removes one), lists of objects merged by their merge key."""
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for key, value in patch.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = strategic_merge(base.get(key), value, key) if key in base else value
        return merged
    if isinstance(base, list) and field in MERGE_KEYS:
        key = MERGE_KEYS[field]
        merged_list = [dict(item) for item in base]
        for item in patch:
            same = [i for i, old in enumerate(merged_list) if old[key] == item[key]]
            if same:
                merged_list[same[0]] = strategic_merge(merged_list[same[0]], item)
            else:
                merged_list.append(item)
        return merged_list
    return patch


def secure_deployment() -> dict[str, Any]:
    return strategic_merge(by_kind("Deployment"), load_all(SECURE_PATCH)[0])  # type: ignore[no-any-return]


def test_the_tls_and_keys_patch_gives_a_valid_deployment() -> None:
    kubernetes_validate.validate(secure_deployment(), K8S_VERSION, strict=True)


def test_with_tls_and_keys_the_probes_go_over_https_to_open_endpoints_and_the_secrets_are_mounted_read_only() -> None:
    pod = secure_deployment()["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert set(container[probe]) - {"periodSeconds", "timeoutSeconds", "failureThreshold"} == {"httpGet"}
        assert container[probe]["httpGet"]["scheme"] == "HTTPS"
        assert container[probe]["httpGet"]["path"] in ("/health", "/v2/health/live")
    env = {e["name"]: e.get("value") for e in container["env"]}
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    secrets = {v["name"]: v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    assert secrets == {"tls": "heart-inference-tls", "api-keys": "heart-inference-api-keys"}
    assert all(mounts[name]["readOnly"] for name in secrets)
    for setting, volume in (("TLS_CERT_FILE", "tls"), ("TLS_KEY_FILE", "tls"), ("API_KEYS_FILE", "api-keys")):
        assert Path(env[setting]).parent == Path(mounts[volume]["mountPath"])
    assert Path(env["TLS_CERT_FILE"]).name == "tls.crt" and Path(env["TLS_KEY_FILE"]).name == "tls.key"  # a kubernetes.io/tls Secret's keys
    assert set(env) <= set(Settings.fields()) | {e["name"] for e in by_kind("Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]}
