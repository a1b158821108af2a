"""Headless Chromium (Debian's ``chromium``) that may reach only 127.0.0.1: every other host name
resolves to nothing and every other address goes to a proxy that does not exist, so a page that
needs a CDN renders without it, as on an air-gapped machine. :func:`render` gives a page's DOM once
its scripts ran; :class:`Page` is a tab a test drives (click, type, read), over the DevTools
protocol on a pipe (no library beyond the standard one)."""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts"))
OFFLINE_FLAGS = [
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>;127.0.0.1",
]


def chromium() -> str:
    binary = shutil.which("chromium")
    assert binary, "Debian's chromium is needed (apt-get install chromium; .ci/run installs it)"
    return binary


def render(url: str, screenshot: str | None = None, budget_ms: int = 15000) -> str:
    """The page's DOM once its scripts have run (``budget_ms`` of virtual time); with
    ``screenshot``, also a PNG of it in ARTIFACTS."""
    with tempfile.TemporaryDirectory() as profile:
        common = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  f"--user-data-dir={profile}", "--no-first-run", f"--virtual-time-budget={budget_ms}", *OFFLINE_FLAGS]
        dom = subprocess.run([*common, "--dump-dom", url], capture_output=True, text=True, timeout=120)
        assert dom.returncode == 0, dom.stderr[-2000:]
        if screenshot:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            shot = subprocess.run([*common, "--window-size=1280,1600", f"--screenshot={ARTIFACTS / screenshot}", url],
                                  capture_output=True, text=True, timeout=120)
            assert shot.returncode == 0 and (ARTIFACTS / screenshot).stat().st_size > 0, shot.stderr[-2000:]
    return dom.stdout


class Page:
    """A headless Chromium tab a test drives as a user would (click, type, read the page), over
    the DevTools protocol on a pipe (``--remote-debugging-pipe``: JSON messages ending in NUL, the
    browser reading fd 3 and writing fd 4), with :func:`render`'s flags: it reaches only 127.0.0.1.
    A context manager: the browser stops at the end."""

    def __init__(self, timeout: float = 30):
        self.timeout = timeout
        self.profile = tempfile.TemporaryDirectory()
        self.next_id = 0
        self.session: str | None = None  # the tab's, once attached: the commands then go to it
        self.answers: dict[int, dict[str, Any]] = {}
        self.arrived = threading.Condition()
        to_browser, self.writer = os.pipe()
        self.reader, from_browser = os.pipe()
        self.process = subprocess.Popen(
            [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
             f"--user-data-dir={self.profile.name}", "--window-size=1280,1600", "--remote-debugging-pipe", *OFFLINE_FLAGS,
             "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, close_fds=False,  # the pipes' ends are CLOEXEC
            start_new_session=True, preexec_fn=lambda: on_fds_3_and_4(to_browser, from_browser))
        os.close(to_browser)
        os.close(from_browser)
        threading.Thread(target=self.receive, daemon=True).start()
        self.session = self.send("Target.attachToTarget", targetId=self.tab(), flatten=True)["sessionId"]

    def tab(self) -> str:
        """The id of the browser's tab (about:blank), once it has one."""
        deadline = time.monotonic() + self.timeout
        while not (pages := [t for t in self.send("Target.getTargets")["targetInfos"] if t["type"] == "page"]):
            assert time.monotonic() < deadline, "the browser opened no tab"
            time.sleep(0.05)  # polling the starting browser, until the deadline
        return pages[0]["targetId"]  # type: ignore[no-any-return]

    def __enter__(self) -> Page:
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the browser, which ends its own processes (renderer, GPU) before it exits; they
        write to the profile until then. Killed (its process group) only if it does not."""
        self.session = None
        os.write(self.writer, json.dumps({"id": 0, "method": "Browser.close"}).encode() + b"\0")
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)  # the group this Page started
            self.process.wait(30)
        os.close(self.writer)
        self.profile.cleanup()

    def receive(self) -> None:
        """Each answer the browser writes, by its id (events are not kept), until the pipe closes."""
        buffer = b""
        while chunk := os.read(self.reader, 1 << 16):
            *messages, buffer = (buffer + chunk).split(b"\0")
            for message in map(json.loads, messages):
                if "id" in message:
                    with self.arrived:
                        self.answers[message["id"]] = message
                        self.arrived.notify_all()
        os.close(self.reader)

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        """A DevTools command (to the tab once attached) and its result; AssertionError on an error."""
        self.next_id += 1
        number = self.next_id
        message = {"id": number, "method": method, "params": params, **({"sessionId": self.session} if self.session else {})}
        os.write(self.writer, json.dumps(message).encode() + b"\0")
        with self.arrived:
            assert self.arrived.wait_for(lambda: number in self.answers, self.timeout), f"{method}: no answer"
            answer = self.answers.pop(number)
        assert "error" not in answer, f"{method}: {answer['error']}"
        return answer["result"]  # type: ignore[no-any-return]

    def goto(self, url: str) -> None:
        self.send("Page.navigate", url=url)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (a promise: its result)."""
        result = self.send("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float | None = None) -> Any:
        """The first truthy value of ``expression`` (an element: true), polled until ``timeout``
        (AssertionError then)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while not (value := self.evaluate(f"(value => value instanceof Node || value)({expression})")):
            assert time.monotonic() < deadline, f"never true: {expression}"
            time.sleep(0.1)  # polling the page's scripts, until the deadline
        return value

    def click(self, selector: str) -> None:
        """Click the first element ``selector`` (a CSS selector) finds, once there is one."""
        self.wait_for(f"document.querySelector({json.dumps(selector)})")
        self.evaluate(f"document.querySelector({json.dumps(selector)}).click()")

    def type(self, selector: str, text: str) -> None:
        """Focus the element and type ``text`` into it as a keyboard would (the page sees input events)."""
        self.wait_for(f"document.querySelector({json.dumps(selector)})")
        self.evaluate(f"document.querySelector({json.dumps(selector)}).focus()")
        self.send("Input.insertText", text=text)

    def screenshot(self, name: str) -> Path:
        """A PNG of the page in ARTIFACTS."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / name).write_bytes(base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"]))
        return ARTIFACTS / name


def on_fds_3_and_4(to_browser: int, from_browser: int) -> None:
    """In the browser's process before it runs: the pipe it reads on fd 3 and the one it writes on fd 4."""
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (to_browser, from_browser)]  # clear of 3 and 4
    for fd, wanted in zip(high, (3, 4)):
        os.dup2(fd, wanted)  # inheritable: the browser keeps these two
