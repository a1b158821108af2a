"""``python -m online_inference.bench.floor_app [--stock]``: the benchmark's floor — an application
that reads the body and answers a constant, served by the service's own server (the same uvicorn
configuration, edge, event loop and process). No service on this stack answers faster, so its
figures, measured in the same run, say how much of the service's time is its own work.
``--stock``: on uvicorn's own httptools protocol instead of the edge (what the edge costs)."""

from __future__ import annotations

from typing import Any

from online_inference.app.dataplane.admission import Admission
from online_inference.app.settings import get_settings
from online_inference.app.server import Server, ignore, uvicorn_config

ANSWER = b'{"predictions":[{"condition":0,"probability":0.5,"warnings":[]}],"model":{"name":"floor","version":"0"}}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(ANSWER)).encode())]


async def floor(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": ANSWER})


if __name__ == "__main__":
    import signal
    import sys

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, ignore)
    settings = get_settings()
    config = uvicorn_config(settings, floor, Admission.of(settings))
    if "--stock" in sys.argv[1:]:
        config.http = "httptools"
    Server(config, on_drain=lambda: None).run()
