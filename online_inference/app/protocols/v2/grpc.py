"""The Open Inference Protocol (V2) over gRPC: ``inference.GRPCInferenceService`` (KServe's
``grpc_predict_v2.proto``, stubs in :mod:`.proto`), and ``grpc.health.v1.Health`` following the
data plane. Decoding and encoding only: a request's input becomes an :class:`.tensors.InputTensor`
(typed ``contents`` as its values, ``raw_input_contents`` as its bytes), which REST's rules check
(:mod:`.tensors`, :meth:`Served.matrix`); the answer carries each output's bytes in
``raw_output_contents``, in the order of its ``outputs``, as Triton answers (``tritonclient.grpc``
reads them). And Triton's model repository RPCs (RepositoryIndex, RepositoryModelLoad,
RepositoryModelUnload: Triton's messages, which ``tritonclient.grpc`` sends), on the data plane's
repository. The transport (:mod:`...grpc`) reads each message within its limits and turns the
service's errors into gRPC's codes."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from online_inference.app.dataplane.plane import DataPlane, Served
from online_inference.app.errors import InvalidInput, ModelNotFound, ModelNotReady
from online_inference.app.protocols.v2 import tensors
from online_inference.app.protocols.v2.proto import grpc_predict_v2_pb2 as pb
from online_inference.app.protocols.v2.proto.grpc_predict_v2_grpc import GRPCInferenceServiceBase
from online_inference.app.protocols.v2.proto.health_grpc import HealthBase
from online_inference.app.protocols.v2.proto.health_pb2 import HealthCheckResponse

SERVICE = "inference.GRPCInferenceService"
WORK = (f"/{SERVICE}/ModelInfer",)  # what the transport charges in full, may refuse for load, and queues
TYPED_CONTENTS = {"FP32": "fp32_contents"}  # the contents field of each datatype the model may take
WATCH_POLL_SECONDS = 0.1  # how often a Watch looks at the data plane's state


def input_tensor(request: Any, given: Any) -> tensors.InputTensor:
    """The request's one input, with its values from ``raw_input_contents`` or from its typed ``contents``."""
    shape = list(given.shape)
    filled = [field.name for field, _ in given.contents.ListFields()]
    if request.raw_input_contents:
        if filled:
            raise InvalidInput(f"input {given.name!r} has both contents and raw_input_contents")
        if len(request.raw_input_contents) != 1:
            raise InvalidInput(f"raw_input_contents has {len(request.raw_input_contents)} entries for 1 input")
        return tensors.InputTensor(given.name, given.datatype, shape, raw=request.raw_input_contents[0])
    field = TYPED_CONTENTS[given.datatype]
    if [name for name in filled if name != field]:
        raise InvalidInput(f"input {given.name!r} is {given.datatype}: its values go in contents.{field}, got {filled}")
    return tensors.InputTensor(given.name, given.datatype, shape, data=list(getattr(given.contents, field)),
                               numbers_only=True)  # protobuf's floats: never a boolean


# Which API key group may call each RPC (None: a probe, open to all): see dataplane/access.py.
ACCESS: dict[str, str | None] = {
    "/inference.GRPCInferenceService/ServerLive": None, "/inference.GRPCInferenceService/ServerReady": None,
    "/inference.GRPCInferenceService/ModelReady": None, "/grpc.health.v1.Health/Check": None,
    "/grpc.health.v1.Health/Watch": None,
    "/inference.GRPCInferenceService/ServerMetadata": "metadata", "/inference.GRPCInferenceService/ModelMetadata": "metadata",
    "/inference.GRPCInferenceService/ModelInfer": "inference",
    "/inference.GRPCInferenceService/RepositoryIndex": "model-repository",
    "/inference.GRPCInferenceService/RepositoryModelLoad": "model-repository",
    "/inference.GRPCInferenceService/RepositoryModelUnload": "model-repository",
}


class Inference(GRPCInferenceServiceBase):
    def __init__(self, plane: DataPlane) -> None:
        self.plane = plane

    async def ServerLive(self, stream: Any) -> None:
        await stream.recv_message()
        await stream.send_message(pb.ServerLiveResponse(live=True))

    async def ServerReady(self, stream: Any) -> None:
        await stream.recv_message()
        await stream.send_message(pb.ServerReadyResponse(ready=self.plane.health()["status"] == "ready"))

    async def ModelReady(self, stream: Any) -> None:
        request = await stream.recv_message()
        try:
            self.plane.ready_named(request.name, request.version or None)
        except ModelNotReady:
            return await stream.send_message(pb.ModelReadyResponse(ready=False))
        await stream.send_message(pb.ModelReadyResponse(ready=True))

    async def ServerMetadata(self, stream: Any) -> None:
        await stream.recv_message()
        await stream.send_message(pb.ServerMetadataResponse(**tensors.server_metadata()))

    async def ModelMetadata(self, stream: Any) -> None:
        request = await stream.recv_message()
        metadata = tensors.model_metadata(self.plane.ready_named(request.name, request.version or None))
        tensor = pb.ModelMetadataResponse.TensorMetadata
        await stream.send_message(pb.ModelMetadataResponse(
            name=metadata["name"], versions=metadata["versions"], platform=metadata["platform"],
            inputs=[tensor(**t) for t in metadata["inputs"]], outputs=[tensor(**t) for t in metadata["outputs"]]))

    async def ModelInfer(self, stream: Any) -> None:
        request = await stream.recv_message()
        served = self.plane.ready_named(request.model_name, request.model_version or None)
        X, wanted = self.plane.decode("grpc", lambda: decode(request, served))
        prediction = await self.plane.predict(served, X, tensors.contributions_asked(served, wanted))
        response = pb.ModelInferResponse(model_name=served.card.name, model_version=served.card.version, id=request.id)
        for output in tensors.output_tensors(served, prediction, wanted):
            response.outputs.add(name=output.name, datatype=output.datatype, shape=output.shape)
            response.raw_output_contents.append(
                np.ascontiguousarray(output.values, dtype=tensors.NUMPY_TYPES[output.datatype]).tobytes())
        await stream.send_message(response)

    async def RepositoryIndex(self, stream: Any) -> None:
        request = await stream.recv_message()
        check_repository(request.repository_name)
        index = pb.RepositoryIndexResponse.ModelIndex
        await stream.send_message(pb.RepositoryIndexResponse(models=[index(**e) for e in self.plane.repository.index(request.ready)]))

    async def RepositoryModelLoad(self, stream: Any) -> None:
        request = await stream.recv_message()
        check_repository(request.repository_name)
        await self.plane.repository.load(request.model_name, parameters(request.parameters))
        await stream.send_message(pb.RepositoryModelLoadResponse())

    async def RepositoryModelUnload(self, stream: Any) -> None:
        request = await stream.recv_message()
        check_repository(request.repository_name)
        await self.plane.repository.unload(request.model_name, parameters(request.parameters))
        await stream.send_message(pb.RepositoryModelUnloadResponse())


def check_repository(name: str) -> None:
    """This server has one repository, unnamed: a request names none (Triton's "every repository")."""
    if name:
        raise ModelNotFound(f"no repository {name!r}: this server has one, unnamed (leave repository_name empty)")


def parameters(given: Any) -> dict[str, Any]:
    """A ``map<string, ModelRepositoryParameter>`` as plain values (each its one ``parameter_choice``)."""
    return {key: getattr(value, value.WhichOneof("parameter_choice") or "string_param") for key, value in given.items()}


def decode(request: Any, served: Served) -> tuple[np.ndarray, list[str]]:
    """The checked matrix of a ModelInferRequest, and the outputs it asks for (labels and probabilities by default)."""
    if len(request.inputs) != 1:
        raise InvalidInput(f"expected exactly one input {served.session.input.name!r}, got {len(request.inputs)}")
    given = request.inputs[0]
    tensors.check_input(served, given.name, given.datatype, list(given.shape))
    wanted = [output.name for output in request.outputs]
    tensors.check_outputs(served, wanted)
    rows = tensors.decode_input(input_tensor(request, given), served)
    return served.matrix(rows), wanted or tensors.default_outputs(served)


class Health(HealthBase):
    """``grpc.health.v1.Health``: the server ("") and the inference service are SERVING while the
    data plane is ready, NOT_SERVING while it loads, has failed, or drains (kubelet's ``grpc:``
    probe then fails first, as ``/health`` does for REST; a Watch is told, then ends)."""

    def __init__(self, plane: DataPlane) -> None:
        self.plane = plane

    def status(self, service: str) -> Any:
        if service not in ("", SERVICE):
            return HealthCheckResponse.SERVICE_UNKNOWN
        return HealthCheckResponse.SERVING if self.plane.health()["status"] == "ready" else HealthCheckResponse.NOT_SERVING

    async def Check(self, stream: Any) -> None:
        request = await stream.recv_message()
        status = self.status(request.service)
        if status == HealthCheckResponse.SERVICE_UNKNOWN:
            raise GRPCError(Status.NOT_FOUND, f"unknown service {request.service!r}")
        await stream.send_message(HealthCheckResponse(status=status))

    async def Watch(self, stream: Any) -> None:
        """Each change of the status; it ends (OK) once it has said NOT_SERVING for a drain."""
        request = await stream.recv_message()
        sent = None
        while True:
            status = self.status(request.service)
            if status != sent:
                await stream.send_message(HealthCheckResponse(status=status))
                sent = status
            if self.plane.draining:
                return
            await asyncio.sleep(WATCH_POLL_SECONDS)
