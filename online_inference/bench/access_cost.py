"""``python -m online_inference.bench.access_cost``: what API keys cost ``/predict`` (issue #31's
target: with a key, within 5 % of the throughput without).

Five services in the same run, each ``python -m online_inference.app`` pinned to core 0 (only the
one being measured runs: the others are paused, as in :mod:`run_bench`): without ``API_KEYS_FILE``
(``off``) and with a keys file of :data:`KEYS` keys, every request sending the inference key
(``on``: the header read, the key hashed and compared with every stored digest, the file's stamp
rechecked), at the defaults (no access log); without keys but sent the same header (``off, header
sent``: what carrying the header costs uvicorn, whatever reads it; ``on``'s ratio to it is the
check's own cost); then ``off`` and ``on`` again with ``ACCESS_LOG=true`` at
``LOG_LEVEL=info``, where uvicorn writes its line per request and, with keys, the front its line
naming the key (to the service's log, a file here, as a container's runtime keeps it). wrk, on
core 1, posts the card's example row over 32 keep-alive connections for ``--seconds``; only 200s
count. The services take turns round by round, in an order that alternates, so that a shared
machine's drift falls on all of them; each one's figure is the median of its rounds, and each
ratio the median of the rounds' ratios to the service it is compared with (:data:`AGAINST`):
keys on to off (the target; and, by CPU, to off with the header: the check alone); with the
access log on, keys on to off (what the key's line adds) and off to off without it (what
uvicorn's own line costs). Beside each throughput, the service's CPU time per request over the
same run (its process's user and system time, from /proc): on a machine others share,
throughput moves with the CPU the service gets, while its CPU time per request is what a request
costs it. Writes ``results/access_cost.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

from online_inference.app.dataplane.access import key_line
from online_inference.bench.openloop import capacity, card_example_body
from online_inference.bench.run_bench import core_kept_awake, others_paused
from online_inference.bench.server import Service, serve
from online_inference.bench.wire import http_request
from online_inference.provenance import provenance

RESULTS = Path(__file__).resolve().parent / "results" / "access_cost.json"
KEYS = 4  # a few holders: every request is compared with each
CONNECTIONS = 32
TARGET = 0.95  # keys on, at least this fraction of the throughput without (issue #31)
OFF, ON, HEADER, LOGGED_OFF, LOGGED_ON = "off", "on", "off, header sent", "off, ACCESS_LOG", "on, ACCESS_LOG"
AGAINST = {OFF: OFF, ON: OFF, HEADER: OFF, LOGGED_OFF: OFF, LOGGED_ON: LOGGED_OFF}  # each one's ratio is to this one's


def log(message: str) -> None:
    print(f"[access_cost] {message}", file=sys.stderr, flush=True)


@contextmanager
def services(folder: Path) -> Iterator[tuple[dict[str, Service], str]]:
    """The five services, and the key the requests send."""
    keys = {f"holder-{i}": secrets.token_urlsafe(32) for i in range(KEYS)}
    keys_file = folder / "api_keys"
    keys_file.write_text("".join(key_line(name, key, "inference,metadata") + "\n" for name, key in keys.items()))
    keyed, logged = {"API_KEYS_FILE": str(keys_file)}, {"ACCESS_LOG": "true", "LOG_LEVEL": "info"}
    envs = {OFF: {}, ON: keyed, HEADER: {}, LOGGED_OFF: logged, LOGGED_ON: {**keyed, **logged}}
    with ExitStack() as stack:
        yield {name: stack.enter_context(serve("onnx", cpus="0", env=env)) for name, env in envs.items()}, keys["holder-0"]


def request_of(service: Service, name: str, key: str) -> bytes:
    """The request wrk sends: the example row, with the key when the service has keys (checked once)."""
    url = service.url + "/predict"
    headers = [("Authorization", f"Bearer {key}")] if name in (ON, HEADER, LOGGED_ON) else []
    httpx.post(url, content=card_example_body(1), headers={"content-type": "application/json", **dict(headers)}).raise_for_status()
    return http_request(url, card_example_body(1), headers=headers)


def cpu_seconds(pid: int) -> float:
    """The user and system time of process ``pid`` (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime: fields 14 and 15


def measure(rounds: int, seconds: float) -> dict[str, dict[str, list[float]]]:
    """Each service's requests/s and CPU microseconds per request, round by round."""
    runs: dict[str, dict[str, list[float]]] = {name: {"rps": [], "cpu_us": []} for name in AGAINST}
    with tempfile.TemporaryDirectory() as tmp, services(Path(tmp)) as (running, key):
        requests = {name: request_of(service, name, key) for name, service in running.items()}
        for number in range(rounds):
            order = list(running) if number % 2 == 0 else list(reversed(running))
            for name in order:
                service = running[name]
                with others_paused(service, list(running.values())), core_kept_awake():
                    cpu = cpu_seconds(service.process.pid)
                    rps = capacity(service.url + "/predict", requests[name], connections=CONNECTIONS, seconds=seconds, cpus="1")
                    cpu = cpu_seconds(service.process.pid) - cpu
                runs[name]["rps"].append(rps)
                runs[name]["cpu_us"].append(1e6 * cpu / (rps * round(seconds)))  # wrk runs whole seconds
            log(f"round {number + 1}: " + ", ".join(f"{name} {r['rps'][-1]:,.0f} req/s, {r['cpu_us'][-1]:.1f} us" for name, r in runs.items()))
    return runs


def summary(runs: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, float | str]]:
    """Each service's median requests/s and CPU time per request, and the medians of its rounds'
    ratios to the one it is compared with (CPU: as requests per CPU-second, so that above 1 is faster)."""
    def ratio(name: str, measure: str) -> float:
        mine, theirs = runs[name][measure], runs[AGAINST[name]][measure]
        pairs = zip(mine, theirs) if measure == "rps" else zip(theirs, mine)
        return round(statistics.median(a / b for a, b in pairs), 3)

    return {name: {"median_rps": round(statistics.median(run["rps"])), "median_cpu_us": round(statistics.median(run["cpu_us"]), 1),
                   "against": AGAINST[name], "ratio": ratio(name, "rps"), "cpu_ratio": ratio(name, "cpu_us")}
            for name, run in runs.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=4.0, help="each wrk run (whole seconds)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]  # what else the machine ran: throughput moves with it, CPU time far less
    runs = measure(args.rounds, args.seconds)
    results = summary(runs)
    met = {measure: float(results[ON][measure]) >= TARGET for measure in ("ratio", "cpu_ratio")}
    results[ON]["cpu_ratio_to_header_sent"] = round(statistics.median(
        header / on for header, on in zip(runs[HEADER]["cpu_us"], runs[ON]["cpu_us"])), 3)  # the check alone
    args.output.write_text(json.dumps({
        "settings": {"rounds": args.rounds, "seconds": args.seconds, "connections": CONNECTIONS, "keys": KEYS,
                     "body": "the card's example row, /predict", "target_ratio": TARGET,
                     "cpu": "each service on core 0, the others paused while one is measured; wrk on core 1",
                     "load_average_1min": {"before": load_before, "after": os.getloadavg()[0]}, **provenance()},
        "results": results, "runs": {name: {m: [round(v, 1) for v in values] for m, values in run.items()} for name, run in runs.items()},
        "met": met}, indent=2) + "\n")
    log(f"wrote {args.output}: " + ", ".join(f"{name} {r['median_rps']:,} req/s ({r['ratio']}x {r['against']}; "
                                             f"CPU {r['median_cpu_us']} us, {r['cpu_ratio']}x)" for name, r in results.items())
        + f"; target {TARGET} met (throughput, CPU): {met['ratio']}, {met['cpu_ratio']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
