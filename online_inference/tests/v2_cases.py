"""V2 requests with binary tensor data (Triton's extension), well formed and malformed: one list,
for the spec of the V2 endpoint (each answers 400 with its reason) and for the hostile set (none
is ever answered 5xx by the running server)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from online_inference.tests.helpers import bundled_card, valid_row

CARD = bundled_card()
ROWS = np.array([valid_row(CARD)] * 2, dtype=np.float32)
PAYLOAD = ROWS.astype("<f4").tobytes()
INFER_PATH = f"/v2/models/{CARD.name}/infer"


def binary_request(payload: bytes = PAYLOAD, header_length: str | None = None, **tensor: Any) -> tuple[dict[str, str], bytes]:
    """Headers and body of a request whose input's bytes follow its JSON; ``tensor`` overrides
    the input's fields (``parameters=None`` drops them)."""
    fields = {"name": CARD.input_name, "shape": list(ROWS.shape), "datatype": "FP32",
              "parameters": {"binary_data_size": len(payload)}, **tensor}
    header = json.dumps({"inputs": [{k: v for k, v in fields.items() if v is not None}]}).encode()
    length = str(len(header)) if header_length is None else header_length
    return {"Inference-Header-Content-Length": length, "Content-Type": "application/octet-stream"}, header + payload


# (case, headers, body, the reason's fragment)
MALFORMED_BINARY: list[tuple[str, dict[str, str], bytes, str]] = [
    ("binary_data_size larger than the bytes sent", *binary_request(parameters={"binary_data_size": len(PAYLOAD) + 4}),
     "goes past the"),
    ("binary_data_size smaller than the bytes sent", *binary_request(parameters={"binary_data_size": len(PAYLOAD) - 4}),
     "add up to"),
    ("bytes that do not fill the shape", *binary_request(PAYLOAD[:-4]), "needs 104 bytes"),
    ("header length past the body", *binary_request(header_length="100000"), "past the end"),
    ("header length not a number", *binary_request(header_length="abc"), "must be a number of bytes"),
    ("header length negative", *binary_request(header_length="-1"), "must be a number of bytes"),
    ("header length cuts the JSON", *binary_request(header_length="10"), "invalid V2 inference request"),
    ("unknown datatype", *binary_request(datatype="FP99"), "unknown datatype 'FP99'"),
    ("another datatype", *binary_request(ROWS.astype("<f8").tobytes(), datatype="FP64"), "must be FP32"),
    ("binary_data_size not a number", *binary_request(parameters={"binary_data_size": "104"}), "binary_data_size must be"),
    ("binary_data_size negative", *binary_request(parameters={"binary_data_size": -8}), "binary_data_size must be"),
    ("both data and binary_data_size", *binary_request(data=ROWS.ravel().tolist()), "both data and"),
    ("bytes no input claims", *binary_request(parameters=None, data=ROWS.ravel().tolist()), "add up to 0 bytes"),
    ("neither data nor binary_data_size", *binary_request(b"", parameters=None), "neither data nor"),
    ("a NaN in the bytes", *binary_request(np.array([[np.nan, *ROWS[0, 1:]]], dtype="<f4").tobytes(), shape=[1, 13]),
     "finite"),
]
