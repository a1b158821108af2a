"""``python -m online_inference.bench.floor_app``: the benchmark's floor — an ASGI app that reads
the body and answers a constant, run on the service's own server stack (the same uvicorn options,
HTTP protocol and event loop, one process). No service on this stack answers faster, so its
figures, measured in the same run, say how much of the service's time is its own work."""

from __future__ import annotations

from typing import Any

import uvicorn

from online_inference.app.__main__ import uvicorn_options
from online_inference.app.config import get_settings

ANSWER = b'{"predictions":[{"condition":0,"probability":0.5,"warnings":[]}],"model":{"name":"floor","version":"0"}}'


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(ANSWER)).encode())]})
    await send({"type": "http.response.body", "body": ANSWER})


if __name__ == "__main__":
    uvicorn.run(app, **uvicorn_options(get_settings()))  # type: ignore[arg-type]
