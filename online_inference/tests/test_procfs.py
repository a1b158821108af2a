"""Spec: /proc tells the port a process listens on, so a service started with PORT=0 can be found."""

from __future__ import annotations

import subprocess
import sys

from online_inference.devtools.procfs import listening_port

LISTENER = """
import socket, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
print(s.getsockname()[1], flush=True)
sys.stdin.read()
"""


def test_the_port_a_process_listens_on_is_read_back() -> None:
    process = subprocess.Popen([sys.executable, "-c", LISTENER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        chosen = int(process.stdout.readline())
        assert listening_port(process.pid) == chosen
    finally:
        process.communicate("")


def test_a_process_that_listens_on_nothing_has_no_port() -> None:
    process = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE, text=True)
    try:
        assert listening_port(process.pid) is None
    finally:
        process.communicate("")


def test_a_finished_process_has_no_port() -> None:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    assert listening_port(process.pid) is None
