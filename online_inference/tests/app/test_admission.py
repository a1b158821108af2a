"""Spec: what all requests in flight may hold together. A request is charged, before its body is
read, the most it can hold; one that does not fit the budget now is refused 503 with
``Retry-After``, one that never could 413; bodiless requests (probes) are never refused; a
chunked body is charged as it arrives; the charge is given back once, when the answer is out.
The work queue lets the work in a turn of the loop at a time, in order, and sheds (503 with
``Retry-After``) a request that would wait, or waited, past ``MAX_QUEUE_SECONDS``. A request with a
body is counted queued from its body's end until its work starts, or its charge is given back."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from online_inference.app.dataplane import admission as budget
from online_inference.app.dataplane.admission import Admission, request_cost
from online_inference.app.errors import Overloaded, PayloadTooLarge
from online_inference.app.dataplane.rules import max_values, value_count_bound
from online_inference.app.dataplane.workqueue import REQUEST_WEIGHT, WORK_BYTES, WorkQueue

MIB = 1024 * 1024
MEASURED = Path(__file__).resolve().parents[2] / "bench" / "results" / "memory.json"
LIMIT = max_values(10_000, 13)


def loaded(budget_bytes: int = 128 * MIB, queue_seconds: float = 0.5) -> Admission:
    admission = Admission(budget_bytes, queue_seconds)
    admission.serve(LIMIT)
    return admission


def test_a_request_is_charged_its_body_what_parsing_keeps_and_a_fixed_share() -> None:
    assert request_cost(0, LIMIT) == budget.FIXED_BYTES + budget.HELD_VALUE_BYTES
    small, large = request_cost(300, LIMIT), request_cost(8 * MIB, LIMIT)
    assert small < 64 * 1024 < large
    assert large == budget.FIXED_BYTES + 3 * 8 * MIB + budget.HELD_VALUE_BYTES * LIMIT  # values capped by the rows


def test_requests_are_admitted_until_the_budget_and_refused_503_beyond() -> None:
    admission = loaded()
    tickets = []
    with pytest.raises(Overloaded) as refused:
        for _ in range(100):
            tickets.append(admission.admit(2 * MIB, False, 0.0))
    assert refused.value.status_code == 503 and refused.value.retry_after == budget.RETRY_AFTER_SECONDS
    assert admission.counts.held <= admission.capacity < admission.budget  # room kept for one parse
    assert admission.counts.refused_memory == 1
    tickets[0].release()
    tickets[0].release()  # once only
    admission.admit(2 * MIB, False, 0.0)
    with pytest.raises(Overloaded):
        admission.admit(2 * MIB, False, 0.0)


def test_probes_are_never_refused() -> None:
    admission = loaded()
    with pytest.raises(Overloaded):
        while True:
            admission.admit(4 * MIB, False, 0.0)
    for _ in range(100):
        admission.admit(0, False, 0.0)  # GET /health, /metrics...


def test_a_body_that_could_never_fit_is_413() -> None:
    with pytest.raises(PayloadTooLarge):
        loaded(budget_bytes=64 * MIB).admit(40 * MIB, False, 0.0)


def test_a_chunked_body_is_charged_as_it_arrives_and_refused_when_it_crosses_the_budget() -> None:
    admission = loaded()
    ticket = admission.admit(0, True, 0.0)
    with pytest.raises(Overloaded):
        for _ in range(1000):
            ticket.grow(64 * 1024)
    assert admission.counts.held <= admission.capacity
    ticket.release()
    assert admission.counts.held == 0


def test_memory_is_given_back_when_a_large_burst_is_over() -> None:
    trims: list[int] = []
    admission = loaded()
    admission.trim = lambda: trims.append(1)
    tickets = [admission.admit(4 * MIB, False, 0.0) for _ in range(3)]
    for ticket in tickets[:-1]:
        ticket.release()
    assert trims == []
    tickets[-1].release()
    assert trims == [1]


def test_the_charges_cover_what_each_measured_request_cost() -> None:
    """bench/memory.py's figures (peak RSS of one request above the steady state, per route, body
    form and parser) within what the budget charges it plus the room kept for one parse."""
    measured = json.loads(MEASURED.read_text())
    assert measured["requests"]
    for request in measured["requests"]:
        if request["status"] == 413:
            continue  # refused before any parser (bodies of more values than the rows need)
        values = budget.values_in(request["body_bytes"], LIMIT)
        charged = request_cost(request["body_bytes"], LIMIT) + budget.TRANSIENT_VALUE_BYTES * values
        assert request["cost_bytes"]["max"] <= charged, request


def test_the_work_starts_a_turn_at_a_time_in_order() -> None:
    async def scenario() -> list[int]:
        admission, started = loaded(), []
        queue = WorkQueue(admission)
        per_turn = WORK_BYTES // (REQUEST_WEIGHT + 1000)

        async def request(i: int) -> None:
            await queue.enter(admission.admit(1000, False, asyncio.get_running_loop().time()))
            started.append(i)

        tasks = [asyncio.create_task(request(i)) for i in range(3 * per_turn)]
        await asyncio.sleep(0)  # the first turn: the first requests start, the rest wait
        first_turn = len(started)
        await asyncio.gather(*tasks)
        assert 0 < first_turn <= per_turn
        return started

    started = asyncio.run(scenario())
    assert started == sorted(started)


def test_a_request_is_queued_from_its_bodys_end_until_its_work_starts_or_it_is_released() -> None:
    async def scenario() -> None:
        admission = loaded()
        queue = WorkQueue(admission)
        probe, started, dropped = admission.admit(0, False, 0.0), admission.admit(1000, False, 0.0), admission.admit(1000, False, 0.0)
        assert admission.counts.queued == 0  # a body still arriving is not queued
        for ticket in (probe, started, dropped):
            ticket.body_read()
        assert admission.counts.queued == 2  # a probe has no work to queue
        await queue.enter(started)
        assert admission.counts.queued == 1
        dropped.release()  # its client went away (or it was answered without work: a 404)
        started.release()
        assert admission.counts.queued == 0

    asyncio.run(scenario())


def test_requests_the_work_queue_holds_stay_queued_until_let_in() -> None:
    async def scenario() -> None:
        admission = loaded()
        queue = WorkQueue(admission)
        tickets = [admission.admit(WORK_BYTES, False, asyncio.get_running_loop().time()) for _ in range(3)]
        for ticket in tickets:
            ticket.body_read()
        tasks = [asyncio.create_task(queue.enter(ticket)) for ticket in tickets]
        await asyncio.sleep(0)  # one a turn: the first starts, two wait
        assert admission.counts.queued == 2
        await asyncio.gather(*tasks)
        assert admission.counts.queued == 0

    asyncio.run(scenario())


def test_a_request_that_waited_past_the_deadline_is_shed_503() -> None:
    async def scenario() -> None:
        admission = loaded(queue_seconds=0.05)
        ticket = admission.admit(1000, False, 0.0)
        ticket.since -= 1.0  # its body was read a second ago
        with pytest.raises(Overloaded) as shed:
            await WorkQueue(admission).enter(ticket)
        assert shed.value.retry_after == budget.RETRY_AFTER_SECONDS
        assert admission.counts.shed_queue == 1

    asyncio.run(scenario())


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(),
                           lambda children: st.lists(children) | st.dictionaries(st.text(), children), max_leaves=50)


def values_of(document: object) -> int:
    """Its JSON values: each container and each member (a member's name is not one: the measured
    cost of a value, admission's, includes the names of the instances form)."""
    if isinstance(document, list):
        return 1 + sum(map(values_of, document))
    if isinstance(document, dict):
        return 1 + sum(map(values_of, document.values()))
    return 1


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES)
def test_a_bodys_values_are_never_undercounted(document: object) -> None:
    """What a request's values are charged for, counted before any parser runs, is at least the
    values the parser makes, and exactly the separators and openers a byte count gives."""
    body = json.dumps(document).encode()
    assert value_count_bound(body) >= values_of(document)
    assert value_count_bound(body) == body.count(b",") + body.count(b"[") + body.count(b"{") + 1
