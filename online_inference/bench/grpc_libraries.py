"""``python -m online_inference.bench.grpc_libraries``: which gRPC library should serve the Open
Inference Protocol over gRPC (issue #30): grpcio (``grpc.aio``, what KServe and MLServer use)
or grpclib (pure Python, asyncio, on ``h2``). Writes ``results/grpc_libraries.json`` and renders
its tables into ``docs/GRPC.md`` (between the ``grpc_libraries`` markers); nothing is typed by hand.

What it measures, each library in a fresh venv of its own under a temporary directory (pip, PyPI):

- **Size**: the bytes on disk of what the library needs to serve the protocol with health and
  reflection (grpcio: grpcio, grpcio-health-checking, grpcio-reflection and protobuf; grpclib:
  grpclib, h2, hpack, hyperframe, multidict and protobuf), installed without bytecode as the images
  install (``--no-compile``); and those files as one tar gzipped at level 6 (how a registry stores
  a layer). pip, setuptools, and what the service already ships (numpy, uvloop) are not counted.
  Set against the distroless image's last size study (``online_inference/docker/results/size.json``)
  and issue #30's budget.
- **Stubs**: the Open Inference Protocol's ``inference.GRPCInferenceService``, taken from the
  descriptor the ``kserve`` wheel (PyPI) embeds in ``grpc_predict_v2_pb2.py`` (upstream:
  kserve/kserve ``python/kserve/kserve/protocol/grpc/grpc_predict_v2.proto``), trimmed to the six
  RPCs the service answers (ServerLive, ServerReady, ModelReady, ServerMetadata, ModelMetadata,
  ModelInfer) and the messages they reach, compiled with grpcio-tools' protoc (``--python_out``,
  ``--grpc_python_out`` and grpclib's ``--grpclib_python_out``) into the temporary directory.
- **Speed**: a minimal server per library, one asyncio process pinned to core 0, with
  ``grpc.health.v1`` and server reflection registered. Its ModelInfer decodes
  ``raw_input_contents`` (FP32 [N, 13]) with numpy and answers ``raw_output_contents`` for the
  shape the model gives (INT64 [N] labels, FP32 [N, 2] probabilities), without the model: the
  libraries' own cost. The load generator is grpcio's asyncio client (what ``tritonclient.grpc``
  uses) for both servers, pinned to core 1, sending pre-serialised requests over 4 channels (4
  connections); closed loop, unary RPCs, for ``--seconds`` after ``--warmup``. Scenarios: 1 row at
  1 and at 32 concurrent RPCs, 1,000 rows at 32. Each server runs on asyncio's own loop and on
  uvloop (the service's). Rounds alternate the libraries' order; the figures are medians over the
  rounds and the median of the per-round grpclib/grpcio ratios. The server's CPU time over each
  run says whether it, and not the client, was the bottleneck.
- **Features**: a ``grpc.health.v1.Health/Check`` and a reflection ``ListServices`` through
  grpcio's standard clients, and a drain: RPCs that take ``SLOW_SECONDS`` are in flight when the
  server gets SIGTERM; how many complete, what an RPC sent after the signal gets, and the server's
  exit status.

The same file runs inside the venvs (``sizes``, ``descriptor``, ``serve``, ``load``, ``check``,
``drain`` subcommands), so it imports only the standard library at the top.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import json
import os
import platform
import resource
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RESULTS = HERE / "results"
OUTPUT = RESULTS / "grpc_libraries.json"
DOC = ROOT / "docs" / "GRPC.md"
SIZE_STUDY = ROOT / "online_inference" / "docker" / "results" / "size.json"
BEGIN, END = "<!-- grpc_libraries: begin (generated) -->", "<!-- grpc_libraries: end -->"

# Issue #30's budget for the distroless image with gRPC in it.
BUDGET = {"added_mb": 75, "gzip_whole_mb": 48}
LIBRARIES = {
    "grpcio": ["grpcio", "grpcio-health-checking", "grpcio-reflection", "protobuf"],
    "grpclib": ["grpclib", "protobuf"],
}
SERVER_EXTRAS = ["numpy", "uvloop"]  # the service ships them already: not counted in the sizes
TOOLS = ["grpcio-tools", "grpclib", "grpcio-health-checking", "grpcio-reflection", "numpy"]
NOT_COUNTED = {"pip", "setuptools", "wheel", *SERVER_EXTRAS}
PROTO = "grpc_predict_v2.proto"
SERVICE = "inference.GRPCInferenceService"
RPCS = ("ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata", "ModelInfer")
MODEL, FEATURES, CLASSES = "heart", 13, 2
SCENARIOS = {"single_c1": (1, 1), "single_c32": (1, 32), "batch1000_c32": (1000, 32)}  # name: (rows, concurrent RPCs)
CHANNELS = 4
LOOPS = ("uvloop", "asyncio")
MAX_MESSAGE = 4 * 1024 * 1024
SLOW_SECONDS, DRAIN_GRACE_SECONDS, DRAIN_RPCS = 1.0, 5.0, 8


def log(message: str) -> None:
    print(f"[grpc_libraries] {message}", file=sys.stderr, flush=True)


# -- venvs and sizes (the orchestrator) ---------------------------------------------------------

def pip_environment() -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    environment.setdefault("PIP_CERT", "/etc/ssl/certs/ca-certificates.crt")
    return environment


def make_venv(python: str, where: Path, packages: list[str]) -> Path:
    """A fresh venv at ``where`` with ``packages`` from PyPI, without bytecode; its python."""
    subprocess.run([python, "-m", "venv", str(where)], check=True)
    venv_python = where / "bin" / "python"
    subprocess.run([str(venv_python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
                    *packages], check=True, env=pip_environment(), timeout=900)
    return venv_python


def in_venv(venv_python: Path, *arguments: str, timeout: float = 300) -> Any:
    """This file's subcommand run by a venv's python; its JSON answer."""
    result = subprocess.run([str(venv_python), str(Path(__file__).resolve()), *arguments], capture_output=True,
                            text=True, env=pip_environment(), timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"{arguments[0]} failed: {result.stderr[-3000:]}")
    return json.loads(result.stdout)


def gzipped_bytes(files: list[str], where: Path) -> int:
    """The size of ``files`` as one tar, gzipped at level 6."""
    archive = where / "layer.tar.gz"
    with tarfile.open(archive, "w:gz", compresslevel=6) as tar:
        for name in sorted(files):
            tar.add(name, arcname=name.lstrip("/"), recursive=False)
    size = archive.stat().st_size
    archive.unlink()
    return size


def measured_sizes(distributions: dict[str, dict[str, Any]], where: Path) -> dict[str, Any]:
    """Bytes installed and gzipped, per distribution and for all of them together."""
    per = {}
    for name, dist in sorted(distributions.items()):
        per[name] = {"version": dist["version"], "installed_bytes": sum(os.path.getsize(f) for f in dist["files"]),
                     "gzip_bytes": gzipped_bytes(dist["files"], where), "largest_file": largest_file(dist["files"])}
    every = [f for dist in distributions.values() for f in dist["files"]]
    return {"distributions": per, "installed_bytes": sum(d["installed_bytes"] for d in per.values()),
            "gzip_bytes": gzipped_bytes(every, where)}


def largest_file(files: list[str]) -> dict[str, Any]:
    biggest = max(files, key=os.path.getsize)
    return {"name": os.path.basename(biggest), "bytes": os.path.getsize(biggest)}


def already_shipped() -> set[str]:
    """Distributions the distroless image ships already: in the runtime lock and kept by its trim
    (protobuf is in the lock, for onnxruntime's tools, but the trim removes it)."""
    from online_inference.docker.trim_venv import REMOVALS

    pins = [line.split()[0].split("==") for line in (ROOT / "requirements" / "runtime.txt").read_text().splitlines()
            if "==" in line and not line.startswith((" ", "#"))]
    return {name.lower() for name, version in pins
            if not any(fnmatch(f"{name.replace('-', '_')}-{version}.dist-info", pattern) for pattern, _ in REMOVALS)}


def counted_sizes(distributions: dict[str, dict[str, Any]], where: Path) -> dict[str, Any]:
    """:func:`measured_sizes` of what the image would gain; what it ships already named apart."""
    shipped = already_shipped()
    sizes = measured_sizes({n: d for n, d in distributions.items() if n not in shipped}, where)
    sizes["already_in_image"] = {n: d["version"] for n, d in sorted(distributions.items()) if n in shipped}
    return sizes


def against_budget(sizes: dict[str, Any]) -> dict[str, Any]:
    """The distroless image of the last size study with these bytes added (an estimate: the image
    trims its venv and keeps loaded modules as bytecode, which this does not)."""
    study = json.loads(SIZE_STUDY.read_text())
    distroless = study["steps"]["distroless"]
    added = distroless["added_mb"] + sizes["installed_bytes"] / 1e6
    gzip_whole = distroless["gzip_mb"] + sizes["gzip_bytes"] / 1e6
    return {"size_study_commit": study["settings"]["commit"], "distroless_added_mb": round(distroless["added_mb"], 2),
            "distroless_gzip_whole_mb": round(distroless["gzip_mb"], 2), "added_mb_with": round(added, 2),
            "gzip_whole_mb_with": round(gzip_whole, 2), "budget": BUDGET,
            "within_added": added <= BUDGET["added_mb"], "within_gzip": gzip_whole <= BUDGET["gzip_whole_mb"]}


# -- subcommands run inside the venvs -----------------------------------------------------------

def installed_distributions() -> dict[str, dict[str, Any]]:
    """The files of every distribution in this venv but those not counted (``sizes``)."""
    from importlib import metadata

    found = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"].lower().replace("_", "-")
        location = os.path.realpath(str(dist.locate_file("")))
        if name in NOT_COUNTED or not location.startswith(os.path.realpath(sys.prefix)):
            continue
        files = [os.path.realpath(str(dist.locate_file(f))) for f in dist.files or []]
        found[name] = {"version": dist.version, "files": sorted({f for f in files if os.path.isfile(f)})}
    return found


def serialized_descriptor(pb2: Path) -> bytes:
    """The FileDescriptorProto a generated ``_pb2.py`` hands to ``AddSerializedFile``, read with
    ``ast`` (the module is never imported)."""
    for node in ast.walk(ast.parse(pb2.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "AddSerializedFile":
            return ast.literal_eval(node.args[0])
    raise ValueError(f"no AddSerializedFile in {pb2}")


def trimmed_descriptor_set(pb2: Path, output: Path) -> dict[str, Any]:
    """The service trimmed to RPCS and the messages they reach, as a FileDescriptorSet for protoc's
    ``--descriptor_set_in`` (``descriptor``)."""
    from google.protobuf import descriptor_pb2

    file = descriptor_pb2.FileDescriptorProto.FromString(serialized_descriptor(pb2))
    (service,) = [s for s in file.service if f"{file.package}.{s.name}" == SERVICE]
    for method in [m for m in service.method if m.name not in RPCS]:
        service.method.remove(method)
    kept = reached_messages(file, service)
    for message in [m for m in file.message_type if m.name not in kept]:
        file.message_type.remove(message)
    file.name = PROTO
    file.ClearField("source_code_info")
    output.write_bytes(descriptor_pb2.FileDescriptorSet(file=[file]).SerializeToString())
    return {"package": file.package, "rpcs": [m.name for m in service.method], "messages": sorted(kept)}


def reached_messages(file: Any, service: Any) -> set[str]:
    """Top-level message names the service's methods reach, through fields and nested types."""
    by_name = {m.name: m for m in file.message_type}
    prefix = f".{file.package}."

    def top(type_name: str) -> str:
        return type_name.removeprefix(prefix).split(".")[0]

    pending = [top(t) for m in service.method for t in (m.input_type, m.output_type)]
    reached: set[str] = set()
    while pending:
        name = pending.pop()
        if name in reached:
            continue
        reached.add(name)
        pending.extend(top(f.type_name) for f in fields_of(by_name[name]) if f.type_name.startswith(prefix))
    return reached


def fields_of(message: Any) -> list[Any]:
    return [*message.field, *(f for nested in message.nested_type for f in fields_of(nested))]


def answer(pb: Any, request: Any) -> Any:
    """ModelInfer's work without the model: the rows decoded, an answer of the model's shape."""
    import numpy as np

    rows = np.frombuffer(request.raw_input_contents[0], dtype=np.float32).reshape(-1, FEATURES)
    n = rows.shape[0]
    response = pb.ModelInferResponse(model_name=request.model_name, model_version=request.model_version, id=request.id)
    response.outputs.add(name="label", datatype="INT64", shape=[n])
    response.outputs.add(name="probabilities", datatype="FP32", shape=[n, CLASSES])
    response.raw_output_contents.extend([np.zeros(n, np.int64).tobytes(), np.full((n, CLASSES), 0.5, np.float32).tobytes()])
    return response


async def answered(pb: Any, request: Any) -> Any:
    if request.id == "slow":  # the drain's in-flight RPCs
        await asyncio.sleep(SLOW_SECONDS)
    return answer(pb, request)


def metadata_answers(pb: Any) -> dict[str, Any]:
    """The other five RPCs' constant answers."""
    tensor = pb.ModelMetadataResponse.TensorMetadata
    return {
        "ServerLive": pb.ServerLiveResponse(live=True), "ServerReady": pb.ServerReadyResponse(ready=True),
        "ModelReady": pb.ModelReadyResponse(ready=True),
        "ServerMetadata": pb.ServerMetadataResponse(name="bench", version="0", extensions=[]),
        "ModelMetadata": pb.ModelMetadataResponse(
            name=MODEL, versions=["1"], platform="onnx", inputs=[tensor(name="input", datatype="FP32", shape=[-1, FEATURES])],
            outputs=[tensor(name="label", datatype="INT64", shape=[-1]),
                     tensor(name="probabilities", datatype="FP32", shape=[-1, CLASSES])]),
    }


def stop_on_sigterm() -> asyncio.Event:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    return stop


async def serve_grpcio(port: int) -> None:
    import grpc
    import grpc_predict_v2_pb2 as pb
    import grpc_predict_v2_pb2_grpc as pb_grpc
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection

    constant = metadata_answers(pb)

    class Inference(pb_grpc.GRPCInferenceServiceServicer):
        async def ModelInfer(self, request: Any, context: Any) -> Any:
            return await answered(pb, request)

    for rpc in RPCS[:-1]:
        setattr(Inference, rpc, lambda self, request, context, rpc=rpc: constant[rpc])
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", MAX_MESSAGE),
                                      ("grpc.max_concurrent_streams", 100)])
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(Inference(), server)
    checks = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checks, server)
    await checks.set("", health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection([SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    stop = stop_on_sigterm()
    await server.start()
    print("READY", flush=True)
    await stop.wait()
    await server.stop(grace=DRAIN_GRACE_SECONDS)


async def serve_grpclib(port: int) -> None:
    import grpc_predict_v2_grpc as pb_grpclib
    import grpc_predict_v2_pb2 as pb
    from grpclib.health.service import Health
    from grpclib.reflection.service import ServerReflection
    from grpclib.server import Server

    constant = metadata_answers(pb)

    class Inference(pb_grpclib.GRPCInferenceServiceBase):
        async def ModelInfer(self, stream: Any) -> None:
            await stream.send_message(await answered(pb, await stream.recv_message()))

    def constant_rpc(rpc: str) -> Any:
        async def respond(self: Any, stream: Any) -> None:
            await stream.recv_message()
            await stream.send_message(constant[rpc])
        return respond

    for rpc in RPCS[:-1]:
        setattr(Inference, rpc, constant_rpc(rpc))
    Inference.__abstractmethods__ = frozenset()
    server = Server(ServerReflection.extend([Inference(), Health()]))
    stop = stop_on_sigterm()
    await server.start("127.0.0.1", port)
    print("READY", flush=True)
    await stop.wait()
    server.close()
    await asyncio.wait_for(server.wait_closed(), DRAIN_GRACE_SECONDS)


def run_loop(loop: str, main: Any) -> None:
    if loop == "uvloop":
        import uvloop

        uvloop.run(main)
    else:
        asyncio.run(main)


def request_bytes(rows: int, request_id: str = "") -> bytes:
    import grpc_predict_v2_pb2 as pb
    import numpy as np

    request = pb.ModelInferRequest(model_name=MODEL, id=request_id)
    request.inputs.add(name="input", datatype="FP32", shape=[rows, FEATURES])
    request.raw_input_contents.append(np.random.default_rng(0).random((rows, FEATURES), dtype=np.float32).tobytes())
    return request.SerializeToString()


def channels(port: int, count: int) -> list[Any]:
    import grpc

    options = [("grpc.use_local_subchannel_pool", 1), ("grpc.max_receive_message_length", MAX_MESSAGE)]
    return [grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=options) for _ in range(count)]


def model_infer(channel: Any) -> Any:
    return channel.unary_unary(f"/{SERVICE}/ModelInfer")  # bytes in, bytes out: no client-side protobuf


def checked_answer(raw: bytes, rows: int) -> bool:
    import grpc_predict_v2_pb2 as pb

    response = pb.ModelInferResponse.FromString(raw)
    return [len(b) for b in response.raw_output_contents] == [rows * 8, rows * CLASSES * 4]


async def load(port: int, rows: int, concurrency: int, seconds: float, warmup: float) -> dict[str, Any]:
    """Closed-loop unary ModelInfer from ``concurrency`` tasks over CHANNELS channels (``load``)."""
    import grpc

    body, opened = request_bytes(rows), channels(port, min(CHANNELS, concurrency))
    calls = [model_infer(c) for c in opened]
    correct = checked_answer(await calls[0](body, timeout=10), rows)
    finished: list[tuple[int, int]] = []
    errors = 0
    started = time.perf_counter_ns()
    deadline = started + int((warmup + seconds) * 1e9)

    async def worker(call: Any) -> None:
        nonlocal errors
        while (before := time.perf_counter_ns()) < deadline:
            try:
                await call(body, timeout=10)
            except grpc.aio.AioRpcError:
                errors += 1
                continue
            after = time.perf_counter_ns()
            finished.append((after, after - before))

    await asyncio.gather(*(worker(calls[i % len(calls)]) for i in range(concurrency)))
    for channel in opened:
        await channel.close()
    window_start = started + int(warmup * 1e9)
    latencies = sorted(latency for at, latency in finished if window_start <= at < deadline)
    return {"rpcs": len(latencies), "rpcs_total": len(finished) + 1, "rps": len(latencies) / seconds, "p50_ms": percentile(latencies, 50) / 1e6,
            "p99_ms": percentile(latencies, 99) / 1e6, "errors": errors, "answers_ok": correct}


def percentile(ordered: list[int], q: float) -> float:
    return float(ordered[min(len(ordered) - 1, int(len(ordered) * q / 100))]) if ordered else float("nan")


async def check(port: int) -> dict[str, Any]:
    """Health Check and reflection ListServices through grpcio's standard clients (``check``)."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        status = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        stream = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
        services = [s.name async for reply in stream for s in reply.list_services_response.service]
        described = reflection_pb2.ServerReflectionRequest(file_containing_symbol=SERVICE)
        files = [len(r.file_descriptor_response.file_descriptor_proto) async for r in
                 reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(iter([described]), timeout=5)]
    return {"health": health_pb2.HealthCheckResponse.ServingStatus.Name(status.status), "reflection_services": sorted(services),
            "reflection_describes_service": bool(files and files[0])}


async def drain(port: int, server_pid: int) -> dict[str, Any]:
    """DRAIN_RPCS slow RPCs in flight, then SIGTERM to the server; then one more RPC (``drain``)."""
    import grpc

    (channel,) = channels(port, 1)
    call = model_infer(channel)
    await call(request_bytes(1), timeout=5)
    slow = request_bytes(1, "slow")

    async def outcome(delay: float) -> str:
        await asyncio.sleep(delay)
        try:
            await call(slow, timeout=SLOW_SECONDS + DRAIN_GRACE_SECONDS)
            return "OK"
        except grpc.aio.AioRpcError as error:
            return error.code().name

    in_flight = [asyncio.ensure_future(outcome(0)) for _ in range(DRAIN_RPCS)]
    await asyncio.sleep(SLOW_SECONDS / 4)
    os.kill(server_pid, signal.SIGTERM)
    signalled = time.perf_counter()
    after = await outcome(SLOW_SECONDS / 4)
    done = await asyncio.gather(*in_flight)
    await channel.close()
    return {"in_flight": DRAIN_RPCS, "in_flight_ok": done.count("OK"), "in_flight_codes": sorted(set(done)),
            "sent_after_signal": after, "answered_within_s": round(time.perf_counter() - signalled, 2)}


def inside(arguments: argparse.Namespace) -> None:
    """The subcommands a venv's python runs; each prints its JSON answer (``serve`` prints READY)."""
    if getattr(arguments, "stubs", None):
        sys.path.insert(0, arguments.stubs)
    command = arguments.command
    if command == "sizes":
        answer_json = installed_distributions()
    elif command == "descriptor":
        answer_json = trimmed_descriptor_set(Path(arguments.pb2), Path(arguments.output))
    elif command == "serve":
        run_loop(arguments.loop, {"grpcio": serve_grpcio, "grpclib": serve_grpclib}[arguments.library](arguments.port))
        return
    elif command == "load":
        answer_json = asyncio.run(load(arguments.port, arguments.rows, arguments.concurrency, arguments.seconds, arguments.warmup))
    elif command == "check":
        answer_json = asyncio.run(check(arguments.port))
    else:
        answer_json = asyncio.run(drain(arguments.port, arguments.server_pid))
    print(json.dumps(answer_json))


# -- the orchestrator ---------------------------------------------------------------------------

def kserve_pb2(where: Path, version: str | None) -> tuple[Path, str]:
    """``grpc_predict_v2_pb2.py`` out of the kserve wheel (downloaded, never installed)."""
    wheels = where / "wheels"
    requirement = f"kserve=={version}" if version else "kserve"
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
                    "--only-binary", ":all:", "-d", str(wheels), requirement], check=True, env=pip_environment(), timeout=300)
    (wheel,) = wheels.glob("kserve-*.whl")
    member = "kserve/protocol/grpc/grpc_predict_v2_pb2.py"
    with zipfile.ZipFile(wheel) as archive:
        (where / "grpc_predict_v2_pb2.py").write_bytes(archive.read(member))
    return where / "grpc_predict_v2_pb2.py", wheel.name.split("-")[1]


def generate_stubs(tools: Path, where: Path, kserve_version: str | None) -> dict[str, Any]:
    """The trimmed descriptor and the three stub modules (protobuf, grpcio, grpclib) in ``where/stubs``."""
    pb2, version = kserve_pb2(where, kserve_version)
    descriptor_set = where / "grpc_predict_v2.pb"
    trimmed = in_venv(tools, "descriptor", "--pb2", str(pb2), "--output", str(descriptor_set))
    stubs = where / "stubs"
    stubs.mkdir()
    environment = {**pip_environment(), "PATH": f"{tools.parent}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run([str(tools), "-m", "grpc_tools.protoc", f"--descriptor_set_in={descriptor_set}", f"--python_out={stubs}",
                    f"--grpc_python_out={stubs}", f"--grpclib_python_out={stubs}", PROTO], check=True, env=environment)
    return {"source": f"kserve {version} wheel (PyPI): kserve/protocol/grpc/grpc_predict_v2_pb2.py",
            "upstream": "github.com/kserve/kserve python/kserve/kserve/protocol/grpc/grpc_predict_v2.proto",
            "stubs": sorted(p.name for p in stubs.iterdir()), **trimmed}


class Server:
    """One library's server, pinned to core 0, until stopped."""

    def __init__(self, python: Path, library: str, loop: str, stubs: Path) -> None:
        from online_inference.docker.dockercli import free_port  # (the orchestrator's: a venv runs this file without the package)

        self.port = free_port()
        command = ["taskset", "-c", "0", str(python), str(Path(__file__).resolve()), "serve", "--library", library,
                   "--loop", loop, "--port", str(self.port), "--stubs", str(stubs)]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, env=pip_environment(), text=True)
        ready = self.process.stdout.readline() if self.process.stdout else ""
        if ready.strip() != "READY":
            self.process.kill()
            raise RuntimeError(f"{library} on {loop} did not start (exit {self.process.wait()})")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=DRAIN_GRACE_SECONDS + 5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def client(tools: Path, stubs: Path, *arguments: str, timeout: float = 120) -> Any:
    command = ["taskset", "-c", "1", str(tools), str(Path(__file__).resolve()), *arguments, "--stubs", str(stubs)]
    result = subprocess.run(command, capture_output=True, text=True, env=pip_environment(), timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"{arguments[0]} failed: {result.stderr[-3000:]}")
    return json.loads(result.stdout)


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measured_run(server: Server, tools: Path, stubs: Path, scenario: str, seconds: float, warmup: float) -> dict[str, Any]:
    """One load run; the CPU time the server and the client spent, per RPC (warm-up included)."""
    rows, concurrency = SCENARIOS[scenario]
    before, client_before, started = server.cpu_seconds(), children_cpu_seconds(), time.perf_counter()
    result = client(tools, stubs, "load", "--port", str(server.port), "--rows", str(rows), "--concurrency", str(concurrency),
                    "--seconds", str(seconds), "--warmup", str(warmup), timeout=seconds + warmup + 60)
    used = server.cpu_seconds() - before
    result["server_cpu"] = used / (time.perf_counter() - started)
    result["server_us_per_rpc"] = used / result["rpcs_total"] * 1e6
    result["client_us_per_rpc"] = (children_cpu_seconds() - client_before) / result["rpcs_total"] * 1e6
    return result


def one_round(venvs: dict[str, Path], tools: Path, stubs: Path, order: list[str], seconds: float, warmup: float) -> dict[str, Any]:
    """Every library (in ``order``), loop and scenario once."""
    results: dict[str, Any] = {}
    for library in order:
        for loop in LOOPS:
            server = Server(venvs[library], library, loop, stubs)
            try:
                results[f"{library}/{loop}"] = {s: measured_run(server, tools, stubs, s, seconds, warmup) for s in SCENARIOS}
            finally:
                server.stop()
    return results


def summarised(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the rounds per library, loop and scenario, and the median grpclib/grpcio ratio."""
    summary: dict[str, Any] = {}
    for loop in LOOPS:
        for scenario in SCENARIOS:
            cell: dict[str, Any] = {}
            for library in LIBRARIES:
                runs = [r[f"{library}/{loop}"][scenario] for r in rounds]
                cell[library] = {key: round(statistics.median(run[key] for run in runs), 4)
                                 for key in ("rps", "p50_ms", "p99_ms", "server_cpu", "server_us_per_rpc", "client_us_per_rpc")}
                cell[library]["errors"] = sum(run["errors"] for run in runs)
                cell[library]["answers_ok"] = all(run["answers_ok"] for run in runs)
            for key in ("rps", "p99_ms", "server_us_per_rpc"):
                ratios = [r[f"grpclib/{loop}"][scenario][key] / r[f"grpcio/{loop}"][scenario][key] for r in rounds]
                cell[f"{key}_ratio_grpclib_over_grpcio"] = round(statistics.median(ratios), 3)
            summary.setdefault(loop, {})[scenario] = cell
    return summary


def features(venvs: dict[str, Path], tools: Path, stubs: Path) -> dict[str, Any]:
    """Health, reflection and the drain, per library, on uvloop."""
    found = {}
    for library in LIBRARIES:
        server = Server(venvs[library], library, "uvloop", stubs)
        try:
            checked = client(tools, stubs, "check", "--port", str(server.port))
            drained = client(tools, stubs, "drain", "--port", str(server.port), "--server-pid", str(server.process.pid))
        finally:
            exit_status = server.stop()
        found[library] = {**checked, "drain": {**drained, "server_exit": exit_status}}
    return found


def library_versions(sizes: dict[str, Any]) -> dict[str, str]:
    return {name: dist["version"] for name, dist in sizes["distributions"].items()}


def measure(arguments: argparse.Namespace) -> dict[str, Any]:
    from online_inference.provenance import provenance

    with tempfile.TemporaryDirectory(prefix="grpc_libraries_") as temporary:
        where = Path(temporary)
        log("venvs: tools, " + ", ".join(LIBRARIES))
        tools = make_venv(arguments.python, where / "tools", TOOLS)
        venvs = {library: make_venv(arguments.python, where / library, [*packages, *SERVER_EXTRAS])
                 for library, packages in LIBRARIES.items()}
        sizes = {library: counted_sizes(in_venv(python, "sizes"), where) for library, python in venvs.items()}
        proto = generate_stubs(tools, where, arguments.kserve)
        stubs = where / "stubs"
        log("features: health, reflection, drain")
        found = features(venvs, tools, stubs)
        rounds = []
        for number in range(arguments.rounds):
            order = list(LIBRARIES) if number % 2 == 0 else list(reversed(LIBRARIES))
            log(f"round {number + 1}/{arguments.rounds}: {' then '.join(order)}")
            rounds.append(one_round(venvs, tools, stubs, order, arguments.seconds, arguments.warmup))
    return {
        "settings": {"rounds": arguments.rounds, "seconds": arguments.seconds, "warmup": arguments.warmup,
                     "channels": CHANNELS, "scenarios": {k: {"rows": r, "concurrency": c} for k, (r, c) in SCENARIOS.items()},
                     "python": f"{platform.python_version()} ({os.path.realpath(arguments.python)})",
                     "client": "grpcio's grpc.aio, pre-serialised requests, asyncio's loop, core 1",
                     **provenance()},
        "proto": proto,
        "sizes": {library: {**s, "image": against_budget(s)} for library, s in sizes.items()},
        "versions": {library: library_versions(s) for library, s in sizes.items()},
        "features": found,
        "summary": summarised(rounds),
        "rounds": rounds,
    }


# -- the document -------------------------------------------------------------------------------

def mb(value: float) -> str:
    return f"{value / 1e6:,.2f}"


def size_rows(results: dict[str, Any]) -> list[str]:
    rows = ["| Library | What is counted | Installed MB | gzip MB | Largest file | distroless added MB (budget ≤ {added}) "
            "| distroless gzip MB, whole (budget ≤ {gzip}) |".format(added=BUDGET["added_mb"], gzip=BUDGET["gzip_whole_mb"]),
            "|---|---|---:|---:|---|---:|---:|"]
    for library, s in results["sizes"].items():
        image, biggest = s["image"], max(s["distributions"].values(), key=lambda d: d["largest_file"]["bytes"])["largest_file"]
        counted = ", ".join(f"{name} {d['version']} ({mb(d['installed_bytes'])} / {mb(d['gzip_bytes'])})"
                            for name, d in s["distributions"].items())
        if s["already_in_image"]:
            counted += "; not counted, the image has it: " + ", ".join(f"{n} {v}" for n, v in s["already_in_image"].items())
        rows.append(f"| {library} | {counted} | {mb(s['installed_bytes'])} | {mb(s['gzip_bytes'])} | "
                    f"`{biggest['name']}` {mb(biggest['bytes'])} | {image['added_mb_with']:.1f} "
                    f"{'✅' if image['within_added'] else '❌'} | {image['gzip_whole_mb_with']:.1f} {'✅' if image['within_gzip'] else '❌'} |")
    return rows


def speed_rows(results: dict[str, Any]) -> list[str]:
    settings = results["settings"]
    rows = ["| Loop | Scenario | grpcio RPC/s | grpcio p50 / p99 ms | grpclib RPC/s | grpclib p50 / p99 ms "
            "| grpclib/grpcio RPC/s | grpclib/grpcio p99 | server CPU µs per RPC (grpcio / grpclib) | server core busy "
            "(grpcio / grpclib) | client CPU µs per RPC (grpcio / grpclib) |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for loop, scenarios in results["summary"].items():
        for name, cell in scenarios.items():
            shape = settings["scenarios"][name]
            a, b = cell["grpcio"], cell["grpclib"]
            rows.append(f"| {loop} | {shape['rows']:,} row(s), {shape['concurrency']} concurrent | {a['rps']:,.0f} | "
                        f"{a['p50_ms']:.2f} / {a['p99_ms']:.2f} | {b['rps']:,.0f} | {b['p50_ms']:.2f} / {b['p99_ms']:.2f} | "
                        f"{cell['rps_ratio_grpclib_over_grpcio']:.2f}× | {cell['p99_ms_ratio_grpclib_over_grpcio']:.2f}× | "
                        f"{a['server_us_per_rpc']:.0f} / {b['server_us_per_rpc']:.0f} | {a['server_cpu']:.0%} / {b['server_cpu']:.0%} | "
                        f"{a['client_us_per_rpc']:.0f} / {b['client_us_per_rpc']:.0f} |")
    return rows


def feature_rows(results: dict[str, Any]) -> list[str]:
    rows = ["| Library | grpc.health.v1 Check | Reflection lists | Drain: in-flight RPCs completed | RPC sent after SIGTERM | "
            "Server exit |", "|---|---|---|---:|---|---:|"]
    for library, f in results["features"].items():
        d = f["drain"]
        rows.append(f"| {library} | {f['health']} | {', '.join(f'`{s}`' for s in f['reflection_services'])} | "
                    f"{d['in_flight_ok']} of {d['in_flight']} ({', '.join(d['in_flight_codes'])}) | {d['sent_after_signal']} | "
                    f"{d['server_exit']} |")
    return rows


def rendered(results: dict[str, Any]) -> str:
    settings, proto = results["settings"], results["proto"]
    errors = sum(cell[lib]["errors"] for scenarios in results["summary"].values() for cell in scenarios.values() for lib in LIBRARIES)
    return "\n".join([
        BEGIN,
        f"Measured by `python -m online_inference.bench.grpc_libraries` on commit `{settings['commit'][:12]}` "
        f"({settings['machine']}), Python {settings['python']}; results: "
        "`online_inference/bench/results/grpc_libraries.json`. Stubs from the "
        f"{proto['source']} ({len(proto['rpcs'])} RPCs, {len(proto['messages'])} messages kept).",
        "",
        "**Size** (MB = 10^6 bytes; per package: installed / gzip; the image columns add these bytes to the distroless "
        f"image of the size study at commit `{next(iter(results['sizes'].values()))['image']['size_study_commit'][:12]}`, "
        f"which adds {next(iter(results['sizes'].values()))['image']['distroless_added_mb']:.1f} MB and gzips to "
        f"{next(iter(results['sizes'].values()))['image']['distroless_gzip_whole_mb']:.1f} MB whole):",
        "",
        *size_rows(results),
        "",
        f"**Speed** (medians of {settings['rounds']} alternating rounds of {settings['seconds']:g} s after "
        f"{settings['warmup']:g} s of warm-up; unary ModelInfer, closed loop, {settings['channels']} channels; "
        f"the client: {settings['client']}; failed RPCs: {errors}):",
        "",
        *speed_rows(results),
        "",
        "**Features** (on uvloop, through grpcio's standard health and reflection clients; the drain: "
        f"{DRAIN_RPCS} RPCs of {SLOW_SECONDS:g} s in flight at SIGTERM, the server given {DRAIN_GRACE_SECONDS:g} s):",
        "",
        *feature_rows(results),
        END,
    ])


def write_doc(results: dict[str, Any]) -> None:
    """Replace the generated block of docs/GRPC.md, if the document has one."""
    if not DOC.exists():
        return
    text = DOC.read_text()
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        DOC.write_text(head + rendered(results) + rest.split(END, 1)[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command")
    run = commands.add_parser("run", help="measure (the default)")
    run.add_argument("--rounds", type=int, default=5)
    run.add_argument("--seconds", type=float, default=3.0)
    run.add_argument("--warmup", type=float, default=0.5)
    run.add_argument("--python", default="/usr/bin/python3.11" if Path("/usr/bin/python3.11").exists() else sys.executable,
                     help="the interpreter of the venvs (Debian 12's, as the distroless image, where installed)")
    run.add_argument("--kserve", help="the kserve wheel's version the proto comes from (default: the newest)")
    run.add_argument("--output", type=Path, default=OUTPUT)
    commands.add_parser("render", help="re-render docs/GRPC.md's block from the results")
    commands.add_parser("sizes")
    descriptor = commands.add_parser("descriptor")
    descriptor.add_argument("--pb2", required=True)
    descriptor.add_argument("--output", required=True)
    for name in ("serve", "load", "check", "drain"):
        sub = commands.add_parser(name)
        sub.add_argument("--port", type=int, required=True)
        sub.add_argument("--stubs", required=True)
    serve = commands.choices["serve"]
    serve.add_argument("--library", choices=list(LIBRARIES), required=True)
    serve.add_argument("--loop", choices=LOOPS, required=True)
    loaded = commands.choices["load"]
    loaded.add_argument("--rows", type=int, required=True)
    loaded.add_argument("--concurrency", type=int, required=True)
    loaded.add_argument("--seconds", type=float, required=True)
    loaded.add_argument("--warmup", type=float, required=True)
    commands.choices["drain"].add_argument("--server-pid", type=int, required=True)
    arguments = parser.parse_args(sys.argv[1:] or ["run"])
    if arguments.command == "render":
        write_doc(json.loads(OUTPUT.read_text()))
    elif arguments.command == "run":
        results = measure(arguments)
        arguments.output.write_text(json.dumps(results, indent=1) + "\n")
        write_doc(results)
        log(f"wrote {arguments.output}")
    else:
        inside(arguments)


if __name__ == "__main__":
    main()
