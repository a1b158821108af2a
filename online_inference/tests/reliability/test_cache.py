"""Spec (#34, a clean cache), against the real process: a download that fails or is interrupted
leaves no partial file in ``MODEL_CACHE_DIR``.

- A full disk: the cache is a tmpfs smaller than the model (8 KiB, mounted in a mount namespace of
  the service's own, ``unshare -rm``). The service reports ``failed`` with the reason (no space
  left on device) and, once stopped, has left the directory empty (listed from inside the
  namespace, where the tmpfs is).
- SIGTERM during a slow download (a store that sends the model 1 KiB at a time): the service exits
  0 within 2 s, and its partial file is gone (the exit removes it: the download's thread is a
  daemon and never gets to its own clean-up).
"""

from __future__ import annotations

import http.server
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from online_inference.app.settings import BUNDLED_MODEL
from online_inference.devtools.procfs import descendants
from online_inference.tests.helpers import wait_listening, wait_until

ROOT = Path(__file__).resolve().parents[3]
MODEL = BUNDLED_MODEL.read_bytes()
SLOW_CHUNK, SLOW_PAUSE = 1024, 0.2  # the slow store: 1 KiB every 0.2 s (about 2.4 s for the model)


class Store(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.send_response(200)
        self.send_header("Content-Length", str(len(MODEL)))
        self.end_headers()
        pause = SLOW_PAUSE if self.path == "/slow/heart.onnx" else 0
        for start in range(0, len(MODEL), SLOW_CHUNK):
            self.wfile.write(MODEL[start:start + SLOW_CHUNK])
            self.wfile.flush()
            time.sleep(pause)  # pacing: the slow store's rate

    def log_message(self, *args: object) -> None:
        """Quiet."""


@pytest.fixture(scope="module")
def store() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Store)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def service_env(uri: str, cache: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "PORT": "0", "GRPC_PORT": "0", "LOG_LEVEL": "info",
            "MODEL_URI": uri, "MODEL_CACHE_DIR": str(cache), "MODEL_LOAD_ATTEMPTS": "1"}


def health(port: int) -> dict[str, object]:
    return httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).json()  # type: ignore[no-any-return]


def the_service(process: subprocess.Popen[bytes]) -> int:
    """The pid of the service's python (the process itself, or one it started)."""
    for pid in (process.pid, *descendants(process.pid)):
        if Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:3] == [sys.executable.encode(), b"-m", b"online_inference.app"]:
            return pid
    raise AssertionError("no service process")


def can_unshare() -> bool:
    return shutil.which("unshare") is not None and subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not can_unshare(), reason="needs unshare -rm (a mount namespace) for a tmpfs of its own")
def test_a_full_disk_fails_with_the_reason_and_leaves_no_partial_file(store: str, tmp_path: Path) -> None:
    cache, listing, log = tmp_path / "cache", tmp_path / "listing", tmp_path / "service.log"
    cache.mkdir()
    script = ('mount -t tmpfs -o size=8k tmpfs "$CACHE" && "$PYTHON" -m online_inference.app; '
              'ls -A "$CACHE" > "$LISTING"; df -k "$CACHE" > "$LISTING.df"')
    env = {**service_env(f"{store}/heart.onnx", cache), "CACHE": str(cache), "LISTING": str(listing), "PYTHON": sys.executable}
    with log.open("wb") as output:
        process = subprocess.Popen(["unshare", "-rm", "sh", "-c", script], env=env, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT)
    try:
        port = wait_listening(process, timeout=60)
        wait_until(lambda: health(port)["status"] != "loading", timeout=30)
        body = health(port)
        assert body["status"] == "failed" and "No space left on device" in str(body["reason"]), body
        os.kill(the_service(process), signal.SIGTERM)
        assert process.wait(30) == 0, log.read_text()[-3000:]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert listing.read_text() == "", f"left in the cache: {listing.read_text()!r}"
    filesystem, used = Path(f"{listing}.df").read_text().splitlines()[1].split()[:3:2]
    assert (filesystem, used) == ("tmpfs", "0"), "the listing is of the full tmpfs, and nothing holds its space"
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


def test_sigterm_during_a_slow_download_exits_at_once_and_leaves_no_partial_file(store: str, tmp_path: Path) -> None:
    cache, log = tmp_path / "cache", tmp_path / "service.log"
    with log.open("wb") as output:
        process = subprocess.Popen([sys.executable, "-m", "online_inference.app"], env=service_env(f"{store}/slow/heart.onnx", cache),
                                   cwd=ROOT, stdout=output, stderr=subprocess.STDOUT)
    try:
        port = wait_listening(process, timeout=60)
        wait_until(lambda: any(p.name.startswith(".part-") for p in cache.glob(".part-*")), timeout=10)
        assert health(port)["status"] == "loading"
        stopped = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0, log.read_text()[-3000:]
        took = time.monotonic() - stopped
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert took < 2, f"exited {took:.1f} s after SIGTERM"
    assert list(cache.iterdir()) == [], f"left in the cache: {[p.name for p in cache.iterdir()]}"
    assert "a download the exit interrupted" in log.read_text(), log.read_text()[-3000:]
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
