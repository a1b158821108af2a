"""Spec: ``/metrics`` counts gRPC's unary RPCs by method and code, and times them, under the names
and labels of grpc-ecosystem's interceptors (``grpc_server_handled_total`` with ``grpc_service``,
``grpc_method``, ``grpc_code``; ``grpc_server_handling_seconds``), which dashboards expect."""

from __future__ import annotations

import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
from tritonclient.utils import InferenceServerException

from online_inference.tests.grpc.service import MODEL, grpc_service, rows
from online_inference.tests.helpers import metric_value

SERVICE = "inference.GRPCInferenceService"


def test_each_unary_rpc_is_counted_by_method_and_code_and_timed() -> None:
    with grpc_service() as service:
        client = triton_grpc.InferenceServerClient(service.target)
        X = rows(2)
        tensor = triton_grpc.InferInput("input", list(X.shape), "FP32")
        tensor.set_data_from_numpy(X)
        for _ in range(3):
            client.infer(MODEL, [tensor])
        wrong = triton_grpc.InferInput("input", [1, 2], "FP32")
        wrong.set_data_from_numpy(np.zeros((1, 2), dtype=np.float32))
        with pytest.raises(InferenceServerException):
            client.infer(MODEL, [wrong])
        assert client.is_server_live()

        def handled(method: str, code: str) -> float:
            return metric_value(service.url, "grpc_server_handled_total", grpc_service=SERVICE, grpc_method=method, grpc_code=code)

        assert handled("ModelInfer", "OK") == 3
        assert handled("ModelInfer", "INVALID_ARGUMENT") == 1
        assert handled("ServerLive", "OK") == 1
        timed = metric_value(service.url, "grpc_server_handling_seconds_count", grpc_service=SERVICE, grpc_method="ModelInfer")
        assert timed == 4
        assert metric_value(service.url, "grpc_server_handling_seconds_sum", grpc_service=SERVICE, grpc_method="ModelInfer") > 0
