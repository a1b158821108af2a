"""Spec: a stop loses no gRPC call the server has taken. At SIGTERM, with RPCs in flight (their
messages half sent, so that they are in flight by construction) and a health Watch open, the
server sends GOAWAY (NO_ERROR, naming the last stream it took) on the connection; the health
service answers NOT_SERVING (the Watch is told); the RPCs in flight, their messages finished after
the GOAWAY, are answered OK with the model's answer; a new call finds no listener (UNAVAILABLE);
and the process exits 0 within ``TIMEOUT_GRACEFUL_SHUTDOWN``, though the Watch never ends by
itself."""

from __future__ import annotations

import signal
import threading
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from h2.errors import ErrorCodes
from h2.events import WindowUpdated

from online_inference.app.protocols.v2.proto import grpc_predict_v2_pb2 as pb
from online_inference.tests.grpc.service import RawConnection, framed, grpc_service, infer_request, rows

GRACE = 10
IN_FLIGHT = 4
ROWS = 1000


def test_the_rpcs_in_flight_at_sigterm_are_answered_and_the_process_exits_0() -> None:
    message = framed(infer_request(rows(ROWS)).SerializeToString())
    with grpc_service(env={"TIMEOUT_GRACEFUL_SHUTDOWN": str(GRACE), "TIMEOUT_BODY": "20"}) as service:
        channel = grpc.insecure_channel(service.target)
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""), timeout=30)
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        seen: list[int] = []
        def follow() -> None:
            try:
                seen.extend(answer.status for answer in watch)
            except grpc.RpcError:  # the Watch ends when the server closes its connection: what it saw is in seen
                return

        watcher = threading.Thread(target=follow, daemon=True)
        watcher.start()

        raw = RawConnection(service.target)
        raw.read_until(lambda events: any(isinstance(e, WindowUpdated) for e in events))  # the server's windows
        streams = [raw.open() for _ in range(IN_FLIGHT)]
        for stream in streams:
            raw.send(stream, message[: len(message) // 2], end=False)
        time.sleep(0.2)  # pacing: the halves reach the server's handlers before the stop

        service.process.send_signal(signal.SIGTERM)
        raw.read_until(lambda _: raw.goaway() is not None)
        goaway = raw.goaway()
        assert goaway is not None and goaway.error_code == ErrorCodes.NO_ERROR
        assert goaway.last_stream_id == max(streams)

        for stream in streams:
            raw.send_past_goaway(stream, message[len(message) // 2:])
        answers = raw.read_past_goaway(streams)
        assert [status for _, status in answers.values()] == ["0"] * IN_FLIGHT
        for body, _ in answers.values():
            answer = pb.ModelInferResponse.FromString(body[5:])
            assert [list(o.shape) for o in answer.outputs] == [[ROWS], [ROWS, 2]]

        deadline = time.monotonic() + 5
        while health_pb2.HealthCheckResponse.NOT_SERVING not in seen and time.monotonic() < deadline:
            time.sleep(0.01)  # polling the Watch's thread, until the deadline
        assert seen[-1:] == [health_pb2.HealthCheckResponse.NOT_SERVING]

        with grpc.insecure_channel(service.target) as late:
            try:
                late.unary_unary("/inference.GRPCInferenceService/ServerLive")(b"", timeout=5)
                code = grpc.StatusCode.OK
            except grpc.RpcError as error:
                code = error.code()
        assert code == grpc.StatusCode.UNAVAILABLE
        assert service.process.wait(GRACE + 5) == 0
        channel.close()
        raw.close()
