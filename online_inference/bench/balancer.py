"""haproxy in front of the service's replicas, on the shipped configuration
(``online_inference/deploy/haproxy/haproxy.cfg``, run as it is: the listening address, the stats
socket and the replicas' addresses come from its ``"${VAR-default}"`` environment variables), and
its runtime API (the stats socket): servers' states, retries, state changes. Used by the rolling
restart test (tests/docker/test_rolling_restart.py) and the replica benchmark (bench/replicas.py)."""

from __future__ import annotations

import csv
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from online_inference.docker.dockercli import free_port

ROOT = Path(__file__).resolve().parents[2]
HAPROXY_CFG = ROOT / "online_inference" / "deploy" / "haproxy" / "haproxy.cfg"
BACKEND = "replicas"
SLOTS = ("replica1", "replica2", "replica3")  # the server lines; each address is in $REPLICA1 ...


def slot_variable(slot: str) -> str:
    """The environment variable that holds a server line's address."""
    return slot.upper()


def check_timing(config: Path = HAPROXY_CFG) -> dict[str, float]:
    """The health check's ``inter`` and ``fastinter`` (seconds) and ``fall``/``rise`` (counts), as
    the shipped ``default-server`` line sets them."""
    line = next(l for l in config.read_text().splitlines() if l.strip().startswith("default-server "))
    words = line.split()

    def after(keyword: str) -> str:
        return words[words.index(keyword) + 1]

    return {"inter": seconds(after("inter")), "fastinter": seconds(after("fastinter")),
            "fall": float(after("fall")), "rise": float(after("rise"))}


def seconds(value: str) -> float:
    """An haproxy time (``1s``, ``250ms``; milliseconds without a unit) in seconds."""
    number, unit = re.fullmatch(r"(\d+)(ms|s|)", value).groups()  # type: ignore[union-attr]
    return int(number) / (1 if unit == "s" else 1000)


@dataclass
class Balancer:
    """A running haproxy: where clients connect, its stats socket, its process and its log."""

    url: str
    stats_socket: Path
    process: subprocess.Popen[bytes]
    log: Path

    def command(self, line: str, timeout: float = 5) -> str:
        """One runtime API command's answer (the socket closes after it)."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(timeout)
            sock.connect(str(self.stats_socket))
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def servers(self) -> dict[str, dict[str, str]]:
        """``show stat`` of the backend's servers, by name: status (UP, DOWN, MAINT, "UP 1/2": going
        down...), wretr (retries), wredis (redispatches), chkdown, lastchg and the rest."""
        lines = self.command("show stat").lstrip("# ").splitlines()
        return {row["svname"]: row for row in csv.DictReader(lines)
                if row["pxname"] == BACKEND and row["svname"] not in ("FRONTEND", "BACKEND")}

    def status(self, slot: str) -> str:
        return self.servers()[slot]["status"]

    def wait_status(self, slot: str, wanted: Callable[[str], bool], timeout: float) -> float:
        """Seconds until ``slot``'s status satisfies ``wanted`` (polled every 20 ms); fails after ``timeout``."""
        started = time.monotonic()
        status = ""
        while time.monotonic() - started < timeout:
            status = self.status(slot)
            if wanted(status):
                return time.monotonic() - started
            time.sleep(0.02)  # polling haproxy's view of the server, until the deadline
        raise AssertionError(f"{slot} still {status!r} after {timeout} s; haproxy's log:\n{self.log_tail()}")

    def set_state(self, slot: str, state: str) -> None:
        """``ready``, ``drain`` or ``maint`` (the runtime API's ``set server``)."""
        answer = self.command(f"set server {BACKEND}/{slot} state {state}").strip()
        if answer:
            raise AssertionError(f"set server {slot} state {state}: {answer}")

    def log_tail(self, characters: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-characters:] if self.log.exists() else ""


def is_up(status: str) -> bool:
    """Fully up: in rotation and not on its way down ("UP 1/2")."""
    return status == "UP"


def is_down(status: str) -> bool:
    """Out of rotation by its health check ("DOWN", or "DOWN 1/2" on its way back up)."""
    return status.startswith("DOWN")


def haproxy_binary() -> str:
    binary = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin")
    if binary is None:
        raise RuntimeError("haproxy is not installed (apt-get install haproxy)")
    return binary


@contextmanager
def haproxy(addresses: dict[str, str], directory: Path, timeout: float = 10, config: Path = HAPROXY_CFG) -> Iterator[Balancer]:
    """haproxy on the shipped configuration (or a variant of it: ``config``), listening on a free
    127.0.0.1 port, its servers at ``addresses`` (slot: host:port; a slot left out points at a
    port nothing listens on, so it stays down); stopped at the end. Its log goes to
    ``directory``/haproxy.log."""
    port = free_port()
    stats_socket = directory / "haproxy.sock"
    log = directory / "haproxy.log"
    env = {**os.environ, "HAPROXY_BIND": f"127.0.0.1:{port}", "HAPROXY_STATS_SOCKET": str(stats_socket),
           **{slot_variable(slot): addresses.get(slot, f"127.0.0.1:{free_port()}") for slot in SLOTS}}
    with log.open("wb") as output:
        process = subprocess.Popen([haproxy_binary(), "-db", "-f", str(config)], env=env, stdout=output,
                                   stderr=subprocess.STDOUT)
    balancer = Balancer(f"http://127.0.0.1:{port}", stats_socket, process, log)
    try:
        wait_answering(balancer, timeout)
        yield balancer
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_answering(balancer: Balancer, timeout: float) -> None:
    """Until the stats socket answers: haproxy has parsed its configuration and listens."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if balancer.process.poll() is not None:
            break
        try:
            balancer.servers()
            return
        except OSError:
            time.sleep(0.05)  # polling the starting haproxy, until the deadline
    raise AssertionError(f"haproxy did not start (exit {balancer.process.poll()}):\n{balancer.log_tail()}")
