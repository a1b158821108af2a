"""``python -m online_inference.bench.memory_child SPEC``: one measurement of ``make memory``
(:mod:`memory`), in a process of its own so that nothing else shares its heap: the peak RSS one
request (or one parser call) takes above the steady state, printed as ``MEMORY_JSON {...}``."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from online_inference.app.http.body import Message
from online_inference.bench.memory_cases import CHUNK_BYTES, PARSERS, PREDICT, WARMUPS, Case, v2_path


def status_bytes(name: str) -> int:
    """A field of this process's /proc status (VmRSS, VmHWM), in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return int(line.split()[1]) * 1024
    raise KeyError(name)


def release_free_memory() -> None:
    """Garbage collected, and the C allocator's free memory returned to the system (glibc)."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def reset_peak() -> int:
    """Free memory released, VmHWM reset to VmRSS (Linux); that VmRSS."""
    release_free_memory()
    Path("/proc/self/clear_refs").write_text("5")
    return status_bytes("VmRSS")


def peak_above_now(measured: Callable[[], Any]) -> tuple[int, Any]:
    """VmHWM during ``measured()`` minus VmRSS before it, and what it returned."""
    before = reset_peak()
    result = measured()
    return status_bytes("VmHWM") - before, result


def scope_of(case: Case, path: str, body_bytes: int) -> dict[str, Any]:
    """The ASGI scope of the case's request to ``path``, as uvicorn gives it."""
    headers = [(k.encode(), v.encode()) for k, v in case.headers] + [(b"content-length", str(body_bytes).encode()),
                                                                    (b"host", b"127.0.0.1")]
    return {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}, "http_version": "1.1", "method": "POST",
            "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
            "headers": headers, "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 50000)}


async def start_lifespan(app: Any) -> asyncio.Task[None]:
    """The application's lifespan, started (the model loads in its thread) and left running."""
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    started = asyncio.Event()
    await inbox.put({"type": "lifespan.startup"})

    async def send(message: Message) -> None:
        if message["type"] == "lifespan.startup.complete":
            started.set()

    task = asyncio.ensure_future(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, inbox.get, send))
    await started.wait()
    while app.plane.served is None:
        if app.plane.state == "failed":
            raise RuntimeError(f"the model failed to load: {app.plane.reason}")
        await asyncio.sleep(0.01)
    return task


async def one_request(app: Any, scope: dict[str, Any], body: bytes) -> tuple[int, int]:
    """The request through the application, its body in CHUNK_BYTES pieces; (status, answer bytes)."""
    offsets = list(range(0, len(body), CHUNK_BYTES)) or [0]
    answer = {"status": 0, "bytes": 0}

    async def receive() -> Message:
        if offsets:
            start = offsets.pop(0)
            return {"type": "http.request", "body": body[start:start + CHUNK_BYTES], "more_body": bool(offsets)}
        await asyncio.Future()  # the client waits for its answer: no disconnect
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
        elif message["type"] == "http.response.body":
            answer["bytes"] += len(message.get("body", b""))

    await app(scope, receive, send)
    return answer["status"], answer["bytes"]


def measure_request(case: Case) -> dict[str, Any]:
    import uvloop

    from online_inference.app.compose import create_app

    body = Path(case.body_file).read_bytes()
    app = create_app()

    async def run() -> dict[str, Any]:
        lifespan = await start_lifespan(app)
        path = PREDICT if case.budget_route.startswith("POST /predict") else v2_path(app.plane.served.card)
        scope = scope_of(case, path, len(body))
        for _ in range(WARMUPS):
            await one_request(app, scope, body)
        before = reset_peak()
        status, answer = await one_request(app, scope, body)
        cost = status_bytes("VmHWM") - before
        lifespan.cancel()
        return {"cost_bytes": cost, "status": status, "answer_bytes": answer}

    return uvloop.run(run())


def parser_call(name: str, app: Any) -> Callable[[bytes], Any]:
    """The parser ``name`` of PARSERS (or V2's request model), as the service built it."""
    import simdjson

    from online_inference.app.protocols.native.request import find_duplicate_keys, predict_request
    from online_inference.app.protocols.v2.types import parse_request

    reader = predict_request(app.plane.served)
    calls: dict[str, Callable[[bytes], Any]] = {
        "objects": reader.decoder.parse_to_objects,
        "buffer": lambda body: reader.decoder.read_buffer(simdjson.Parser(), body),
        "duplicates": find_duplicate_keys,
        "pydantic": reader.request_adapter.validate_json,
        "v2": parse_request,
    }
    return calls[name]


def measure_parser(case: Case) -> dict[str, Any]:
    from online_inference.app.compose import create_app

    body = Path(case.body_file).read_bytes()
    app = create_app()
    app.plane.load()
    call = parser_call(PARSERS.get(case.parser, "v2"), app)

    def parse() -> Any:
        """What the parser made of the body, or the error it raised (pydantic's too_long...)."""
        try:
            return call(body)
        except Exception as error:  # noqa: BLE001  # a refusal is an outcome to record, not a failure
            return error

    for _ in range(WARMUPS):
        parse()
    cost, result = peak_above_now(parse)
    outcome = "refused" if isinstance(result, Exception) else "declined" if result is None else "parsed"
    return {"cost_bytes": cost, "status": outcome, "answer_bytes": 0}


def child_main(spec: str) -> int:
    payload = json.loads(spec)
    case = Case(**{**payload["case"], "headers": [tuple(h) for h in payload["case"]["headers"]]})
    measured = measure_parser(case) if payload["kind"] == "parser" else measure_request(case)
    print("MEMORY_JSON " + json.dumps(measured), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1]))
