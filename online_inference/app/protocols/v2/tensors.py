"""The Open Inference Protocol's tensors, whatever carries them: REST's JSON and binary data
(:mod:`.rest`, :mod:`.binary`) and gRPC's contents decode into an :class:`InputTensor`; this module
checks it against the model's signature and hands the data plane its rows, and gives back the
model's outputs and metadata as tensors. The protocols only read and write their wire formats."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from online_inference import __version__
from online_inference.app.dataplane.plane import Rows, Served
from online_inference.app.errors import InvalidInput, PayloadTooLarge
from online_inference.app.model.session import Prediction, TensorSpec

SERVER_NAME = "heart-online-inference"
# Triton's names for what this server speaks beyond the core protocol (both over REST and gRPC):
# binary tensors and the model repository (index, load, unload), as a client asks before it uses them.
EXTENSIONS = ["binary_tensor_data", "model_repository"]
PLATFORM = "onnxruntime_onnx"
DATATYPES = {"BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
             "FP16", "FP32", "FP64", "BF16", "BYTES"}  # the protocol's
# Each datatype this service reads or writes, as the little-endian numpy type of its bytes.
NUMPY_TYPES = {"FP32": np.dtype("<f4"), "INT64": np.dtype("<i8")}
DATATYPE_OF = {dtype.newbyteorder("="): name for name, dtype in NUMPY_TYPES.items()}


@dataclass(frozen=True)
class InputTensor:
    """One input as a protocol read it: its values either as numbers (flat or nested: JSON
    ``data``, gRPC's typed contents) or as raw little-endian bytes (binary data, gRPC's raw
    contents). ``numbers_only``: its ``data`` can hold no boolean (protobuf's floats; JSON without
    ``true`` or ``false``), so the card's rules may check it as whole arrays (bytes always can)."""

    name: str
    datatype: str
    shape: list[int]
    data: list[Any] | None = None
    raw: bytes | memoryview | None = None
    numbers_only: bool = False


@dataclass(frozen=True)
class OutputTensor:
    name: str
    datatype: str
    shape: list[int]
    values: np.ndarray


def datatype(spec: TensorSpec) -> str:
    return DATATYPE_OF[spec.dtype]


def server_metadata() -> dict[str, Any]:
    return {"name": SERVER_NAME, "version": __version__, "extensions": EXTENSIONS}


def model_metadata(served: Served) -> dict[str, Any]:
    """The model's name, version, platform and tensors, from the graph's signature."""
    session = served.session
    described = [{"name": s.name, "datatype": datatype(s), "shape": list(s.shape)} for s in (session.input, *session.outputs)]
    return {"name": served.card.name, "versions": [served.card.version], "platform": PLATFORM,
            "inputs": described[:1], "outputs": described[1:]}


def check_input(served: Served, name: str, dtype_name: str, shape: list[int]) -> None:
    """An input's name, datatype and shape ``[N, features]`` against the graph's signature, before
    its values are read."""
    spec, max_rows = served.session.input, served.rules.max_rows
    width = spec.shape[1]
    if name != spec.name:
        raise InvalidInput(f"unknown input {name!r}; the model's input is {spec.name!r}")
    if dtype_name not in DATATYPES:
        raise InvalidInput(f"input {spec.name!r} has an unknown datatype {dtype_name!r}")
    if dtype_name != datatype(spec):
        raise InvalidInput(f"input {spec.name!r} must be {datatype(spec)}, got {dtype_name}")
    if len(shape) != 2 or shape[1] != width or shape[0] < 1:
        raise InvalidInput(f"input {spec.name!r} must have shape [N, {width}] with N >= 1, got {shape}")
    if shape[0] > max_rows:
        raise PayloadTooLarge(f"at most {max_rows} rows per request, got {shape[0]}")


def decode_input(tensor: InputTensor, served: Served) -> Rows:
    """The rows of the model's one input, whose name, datatype and shape the protocol has checked
    first (:func:`check_input`, before it read the values), its values counted against its shape.
    The card's rules on them are the data plane's (:meth:`Served.matrix`)."""
    shape, width = tensor.shape, served.session.input.shape[1]
    if tensor.raw is not None:
        return Rows(raw_values(tensor.name, tensor.datatype, shape, tensor.raw), numbers_only=True)
    values = flatten(tensor.data or [])
    if len(values) != shape[0] * width:
        raise InvalidInput(f"shape {shape} needs {shape[0] * width} values, got {len(values)}")
    return Rows([values[i : i + width] for i in range(0, len(values), width)], numbers_only=tensor.numbers_only)


def raw_values(name: str, dtype_name: str, shape: list[int], data: bytes | memoryview) -> np.ndarray:
    """The tensor an input's bytes hold, of exactly the bytes its shape needs."""
    dtype = NUMPY_TYPES[dtype_name]
    expected = math.prod(shape) * dtype.itemsize
    if len(data) != expected:
        raise InvalidInput(f"input {name!r}: shape {shape} of {dtype_name} needs {expected} bytes, got {len(data)}")
    return np.frombuffer(data, dtype=dtype).reshape(shape)


def flatten(data: list[Any]) -> list[Any]:
    """Row-major flattening of nested lists (V2 allows both flat and nested ``data``)."""
    flat: list[Any] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            flat.append(item)
        else:
            stack.pop()
    return flat


def default_outputs(served: Served) -> list[str]:
    """What a request that names no outputs gets: labels and probabilities (contributions only when asked)."""
    return served.session.answer_names


def check_outputs(served: Served, asked: list[str]) -> None:
    """InvalidInput for an output the model does not give (saying why a model has no contributions)."""
    available = served.session.output_names
    unknown = [name for name in asked if name not in available]
    if unknown:
        contributions = served.card.contributions
        why = f"; it has no contributions: {contributions.why}" if contributions.output is None else ""
        raise InvalidInput(f"unknown outputs {unknown}; the model gives {available}{why}")


def contributions_asked(served: Served, asked: list[str]) -> bool:
    """Whether the outputs asked for include the contributions (the model computes them only then)."""
    return served.card.contributions.output in asked


def output_tensors(served: Served, prediction: Prediction, asked: list[str]) -> list[OutputTensor]:
    """The outputs asked for (checked by :func:`check_outputs`), in the order asked."""
    by_name = {spec.name: (spec, values) for spec, values in zip(served.session.outputs, prediction.tensors())}
    return [OutputTensor(name, datatype(by_name[name][0]), list(by_name[name][1].shape), by_name[name][1]) for name in asked]
