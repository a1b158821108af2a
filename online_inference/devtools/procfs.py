"""What Linux's /proc says of a process: its children, its memory, and the TCP port it listens on.

The port matters to the benchmark and the tests: they start the service with ``PORT=0``, so the
kernel chooses a free port and no other process can take it between a choice and the bind, then
read the port back here."""

from __future__ import annotations

import os
from pathlib import Path

TCP_LISTEN = "0A"  # the state column of /proc/net/tcp


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def descendants(pid: int) -> list[int]:
    found = []
    for child in children(pid):
        found += [child, *descendants(child)]
    return found


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed since the listing: not a socket of the process any more
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    return inodes


def listening_port(pid: int) -> int | None:
    """The TCP port the process ``pid`` listens on (in its network namespace), or None while it
    listens on none. Reading another user's process needs root, as in a container run. (The
    service listens on two, HTTP and gRPC: :func:`listening_ports`.)"""
    ports = listening_ports(pid)
    return ports[0] if ports else None


def listening_ports(pid: int) -> list[int]:
    """Every TCP port the process ``pid`` listens on, in the kernel's order (none: an empty list)."""
    try:
        inodes = socket_inodes(pid)
        tables = [Path(f"/proc/{pid}/net/{name}").read_text() for name in ("tcp", "tcp6")]
    except OSError:  # the process is gone, or not started yet
        return []
    ports = []
    for table in tables:
        for line in table.splitlines()[1:]:
            fields = line.split()
            if fields[3] == TCP_LISTEN and fields[9] in inodes:
                ports.append(int(fields[1].rsplit(":", 1)[1], 16))
    return ports
