"""``python -m online_inference.bench.floor_app``: the benchmark's floor — an app that reads the body
and answers a constant, run on the service's own server stack (the same uvicorn options, HTTP
protocol and event loop, one process) and the same way: a ``POST /predict`` whose length is
declared is given to it whole and answered in one write (see :mod:`online_inference.app.protocol`),
anything else through ASGI. No service on this stack answers faster, so its figures, measured in
the same run, say how much of the service's time is its own work."""

from __future__ import annotations

from typing import Any

import uvicorn

from online_inference.app.__main__ import uvicorn_options
from online_inference.app.config import get_settings

ANSWER = b'{"predictions":[{"condition":0,"probability":0.5,"warnings":[]}],"model":{"name":"floor","version":"0"}}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(ANSWER)).encode())]


class Floor:
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        await send({"type": "http.response.body", "body": ANSWER})

    def takes_whole(self, scope: dict[str, Any]) -> bool:
        return scope["method"] == "POST" and scope["path"] == "/predict"

    def answer_whole(self, scope: dict[str, Any], body: bytes, alone: bool, reply: Any) -> bool:
        reply((200, HEADERS, ANSWER))
        return True


if __name__ == "__main__":
    uvicorn.run(Floor(), **uvicorn_options(get_settings()))  # type: ignore[arg-type]
