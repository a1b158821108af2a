"""Spec: gRPC's work waits in the queue REST's requests wait in, and is shed past
``MAX_QUEUE_SECONDS`` as theirs is: UNAVAILABLE, with REST's message and ``retry-after`` (seconds)
in the trailers; the probes and metadata never wait, and are answered. (Here the deadline is a
microsecond: any work that is not started at once is shed.)"""

from __future__ import annotations

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from online_inference.app.dataplane.admission import SHED
from online_inference.tests.grpc.service import INFER, MODEL, grpc_service, infer_request, rows


def test_work_past_the_queue_deadline_is_shed_and_the_probes_are_answered() -> None:
    with grpc_service(env={"MAX_QUEUE_SECONDS": "0.000001"}) as service:
        with grpc.insecure_channel(service.target) as channel:
            with pytest.raises(grpc.RpcError) as shed:
                channel.unary_unary(INFER)(infer_request(rows(1000)).SerializeToString(), timeout=10)
            assert (shed.value.code(), shed.value.details()) == (grpc.StatusCode.UNAVAILABLE, SHED)
            assert ("retry-after", "1") in shed.value.trailing_metadata()
            health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""))
            assert health.status == health_pb2.HealthCheckResponse.SERVING
            assert channel.unary_unary("/inference.GRPCInferenceService/ServerLive")(b"", timeout=10) == b"\x08\x01"
        rest = httpx.post(service.url + f"/v2/models/{MODEL}/infer", timeout=10, json={
            "inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 13], "data": rows(1).ravel().tolist()}]})
        assert rest.status_code == 503 and rest.json()["error"] == SHED
