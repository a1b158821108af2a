"""Triton's binary tensor data extension of the Open Inference Protocol (KServe reads it too), as
``tritonclient`` sends it by default.

A request may carry tensors as raw little-endian bytes after its JSON: the header
``Inference-Header-Content-Length`` gives the JSON's length, each binary input says its size in
``parameters.binary_data_size``, and the bytes follow in the order of the inputs. An output is
answered the same way when its ``parameters.binary_data`` is true, or when the request's
``parameters.binary_data_output`` is (an output's own ``binary_data: false`` wins). Every
inconsistency is the client's: InvalidInput (400), with the reason.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from online_inference.app.errors import InvalidInput
from online_inference.app.protocols.v2.tensors import NUMPY_TYPES, OutputTensor

HEADER_LENGTH = "inference-header-content-length"
BINARY_MEDIA_TYPE = "application/octet-stream"
def split_body(body: bytes, header_length: str | None) -> tuple[bytes, memoryview]:
    """The JSON part of a request and the binary part after it."""
    if header_length is None:
        return body, memoryview(b"")
    if not header_length.strip().isdigit():
        raise InvalidInput(f"Inference-Header-Content-Length must be a number of bytes, got {header_length!r}")
    length = int(header_length)
    if length > len(body):
        raise InvalidInput(f"Inference-Header-Content-Length is {length}, past the end of the {len(body)}-byte body")
    return body[:length], memoryview(body)[length:]


def binary_size(parameters: Any) -> int | None:
    """``parameters.binary_data_size`` of an input, checked; None when the input is in JSON."""
    size = getattr(parameters, "binary_data_size", None) if parameters is not None else None
    if size is None:
        return None
    if type(size) is not int or size < 0:
        raise InvalidInput(f"binary_data_size must be a number of bytes, got {size!r}")
    return size


def take(binary: memoryview, offset: int, size: int, name: str) -> memoryview:
    """The ``size`` bytes of input ``name`` from ``offset``."""
    if offset + size > len(binary):
        raise InvalidInput(f"input {name!r}: binary_data_size {size} goes past the {len(binary)} bytes after the JSON")
    return binary[offset:offset + size]


def check_all_read(binary: memoryview, read: int) -> None:
    if read != len(binary):
        raise InvalidInput(f"the inputs' binary_data_size add up to {read} bytes, but {len(binary)} follow the JSON")


def wants_binary(output_parameters: Any, request_parameters: Any) -> bool:
    own = getattr(output_parameters, "binary_data", None) if output_parameters is not None else None
    if own is not None:
        if type(own) is not bool:
            raise InvalidInput(f"binary_data must be true or false, got {own!r}")
        return own
    default = getattr(request_parameters, "binary_data_output", False) if request_parameters is not None else False
    if type(default) is not bool:
        raise InvalidInput(f"binary_data_output must be true or false, got {default!r}")
    return default


def encode_outputs(outputs: list[OutputTensor], as_bytes: list[bool]) -> tuple[list[dict[str, Any]], bytes]:
    """The answer's outputs in JSON, and the bytes after the JSON of those wanted as bytes."""
    described, blobs = [], []
    for output, binary in zip(outputs, as_bytes):
        metadata = {"name": output.name, "datatype": output.datatype, "shape": output.shape}
        if binary:
            blob = np.ascontiguousarray(output.values, dtype=NUMPY_TYPES[output.datatype]).tobytes()
            described.append({**metadata, "parameters": {"binary_data_size": len(blob)}})
            blobs.append(blob)
        else:
            described.append({**metadata, "data": output.values.ravel().tolist()})
    return described, b"".join(blobs)
