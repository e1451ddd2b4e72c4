"""Correlation IDs: validation, generation, binding, carrying across boundaries, and the
one resolution rule at every entry point (HTTP, WebSocket, job creation, the job-run APIs,
webhooks)."""

import asyncio
import contextlib
import functools
import os
import re
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from promkit.instrument import correlation as corr
from promkit.instrument.jobs import JobTracker
from promkit.instrument.middleware import HttpMetricsMiddleware
from promkit.instrument.queues import Job, QueueSpec, send_webhook


def test_new_ids_are_unique_version4_uuids():
    ids = {corr.new_correlation_id() for _ in range(20_000)}
    assert len(ids) == 20_000
    for cid in ids:  # every one: each position in a batch is laid out on its own
        parsed = uuid.UUID(cid)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122 and str(parsed) == cid


def test_new_ids_are_unpredictable_every_random_bit_varies():
    # 122 random bits per ID, like uuid4: no fixed prefix, no sequence. (The old
    # scheme, a per-process prefix plus a counter, failed this: two IDs gave the next.)
    ids = [uuid.UUID(corr.new_correlation_id()).int for _ in range(2_000)]
    fixed = (0xF << 76) | (0xC << 60)  # version and variant bits
    for bit in range(128):
        if fixed >> bit & 1:
            continue
        ones = sum(n >> bit & 1 for n in ids)
        assert 0.4 < ones / len(ids) < 0.6, f"bit {bit} is not random: {ones} ones"
    prefixes = {str(uuid.UUID(int=n))[:8] for n in ids}
    assert len(prefixes) > 1_990


def test_new_ids_come_from_the_operating_systems_random_source(monkeypatch):
    monkeypatch.setattr(corr.os, "urandom", lambda n: b"\xff" * n)
    monkeypatch.setattr(corr, "_pool", [])
    assert corr.new_correlation_id() == "ffffffff-ffff-4fff-bfff-ffffffffffff"
    monkeypatch.setattr(corr.os, "urandom", lambda n: b"\x00" * n)
    monkeypatch.setattr(corr, "_pool", [])
    assert corr.new_correlation_id() == "00000000-0000-4000-8000-000000000000"


def test_new_ids_stay_unique_across_threads_refilling_at_once():
    # IDs are handed out from batches; threads that empty the pool together
    # each make a batch of their own random bytes.
    results: list[list[str]] = [[] for _ in range(4)]

    def take(out: list[str]) -> None:
        for _ in range(5_000):
            out.append(corr.new_correlation_id())

    threads = [threading.Thread(target=take, args=(out,)) for out in results]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [cid for out in results for cid in out]
    assert len(set(everything)) == len(everything) == 20_000


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_never_repeats_its_parents_ids():
    corr.new_correlation_id()  # the parent holds a part-used batch
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report a few IDs, then leave without running pytest's exit
        os.close(read_end)
        os.write(write_end, "\n".join(corr.new_correlation_id() for _ in range(100)).encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        child_ids = set(pipe.read().split("\n"))
    os.waitpid(pid, 0)
    parent_ids = {corr.new_correlation_id() for _ in range(200)}
    assert len(child_ids) == 100
    assert not child_ids & parent_ids
    assert {cid[:24] for cid in child_ids}.isdisjoint({cid[:24] for cid in parent_ids})


def test_valid_uuids_are_accepted_as_given_with_dashes_or_as_32_hex_digits():
    # Kept as given (not re-cased, no dashes added): a neighbour gets its own ID back.
    for cid in (str(uuid.uuid4()), str(uuid.uuid4()).upper(), uuid.uuid4().hex,
                uuid.uuid4().hex.upper(), str(uuid.uuid1())):
        assert corr.valid_correlation_id(cid) == cid
        assert corr.valid_correlation_id(cid.encode()) == cid


@given(st.text(max_size=200) | st.binary(max_size=200))
def test_anything_that_is_not_a_uuid_is_rejected(value):
    result = corr.valid_correlation_id(value)
    if result is not None:
        # Only a real UUID gets through, as given.
        parsed = uuid.UUID(result)
        assert parsed.variant == uuid.RFC_4122 and 1 <= (parsed.version or 0) <= 8
        assert result == (value.decode("latin-1") if isinstance(value, bytes) else value)


def test_malicious_values_are_rejected():
    good = str(uuid.uuid4())
    hex_id = uuid.uuid4().hex
    for bad in (good + "\r\nSet-Cookie: x=1", "x" * 10_000, "not-a-uuid", good[:-1] + "g",
                "\x00" * 36, "\x00" * 32, hex_id + "\r\n", hex_id[:-1], hex_id + "0",
                "0" * 32, hex_id[:12] + "0" + hex_id[13:], "{" + good + "}",
                "urn:uuid:" + good, good[:8] + good[9:] + "-"):
        assert corr.valid_correlation_id(bad) is None, bad


def test_bind_sets_and_restores_the_contextvar():
    assert corr.get_correlation_id() is None
    with corr.bind_correlation_id("nonsense") as cid:
        assert corr.get_correlation_id() == cid and uuid.UUID(cid)
        inner = str(uuid.uuid4())
        with corr.bind_correlation_id(inner):
            assert corr.get_correlation_id() == inner
        assert corr.get_correlation_id() == cid
    assert corr.get_correlation_id() is None


def test_inject_and_extract_round_trip_through_a_payload_and_headers():
    with corr.bind_correlation_id() as cid:
        payload = corr.inject({"job": "ocr"})
        headers = corr.inject({}, key=corr.CORRELATION_HEADER)
    assert payload == {"job": "ocr", "correlation_id": cid}
    assert corr.extract(payload) == cid
    assert corr.extract({"x-correlation-id": cid}) == cid  # header names are case-insensitive
    assert corr.extract(headers) == cid
    assert corr.extract({"X-Request-ID": cid}) == cid
    assert corr.extract({"X-Request-ID": cid.replace("-", "")}) == cid.replace("-", "")
    assert corr.extract({"correlation_id": "evil\r\n"}) is None
    assert corr.extract(None) is None


def test_contextvar_follows_tasks():
    async def child():
        await asyncio.sleep(0)
        return corr.get_correlation_id()

    async def main():
        with corr.bind_correlation_id() as cid:
            assert await asyncio.create_task(child()) == cid

    asyncio.run(main())


def test_inject_without_a_bound_id_does_not_bind_one():
    assert corr.get_correlation_id() is None
    first = corr.inject({})["correlation_id"]
    second = corr.inject({})["correlation_id"]
    assert first != second and uuid.UUID(first)
    assert corr.get_correlation_id() is None


# ------------------------------------------------------------------ the one rule


def test_resolve_takes_the_first_valid_id_in_key_order_then_the_bound_one_then_a_new_one():
    a, b = str(uuid.uuid4()), uuid.uuid4().hex
    assert corr.resolve_correlation_id({"X-Request-ID": b, "correlation_id": a}) == a
    assert corr.resolve_correlation_id({"correlation_id": "evil\r\n", "x-request-id": b}) == b
    assert corr.resolve_correlation_id({"X-Request-ID": b}, ("correlation_id",)) != b
    with corr.bind_correlation_id() as bound:
        assert corr.resolve_correlation_id({"correlation_id": "nope"}) == bound
        assert corr.resolve_correlation_id() == bound
    fresh = corr.resolve_correlation_id(None)
    assert corr.valid_correlation_id(fresh) and fresh != corr.resolve_correlation_id()
    assert corr.get_correlation_id() is None  # resolving binds nothing


def test_bind_follows_the_rule_and_works_with_async_with():
    with corr.bind_correlation_id() as outer, corr.bind_correlation_id("not an id") as inner:
        assert inner == outer  # the ID already bound, not a new one

    async def main():
        async with corr.bind_correlation_id() as cid:
            assert corr.get_correlation_id() == cid
        return corr.get_correlation_id()

    assert asyncio.run(main()) is None


def test_the_bound_id_is_structlogs_context_at_no_extra_cost():
    # The contextvar carries structlog's prefix: merge_contextvars and get_contextvars see it.
    assert corr.correlation_id_var.name.startswith(structlog.contextvars.STRUCTLOG_KEY_PREFIX)
    with corr.bind_correlation_id() as cid:
        assert structlog.contextvars.get_contextvars() == {"correlation_id": cid}
        assert structlog.contextvars.merge_contextvars(None, "info", {}) == {"correlation_id": cid}
        # A value passed to the log call wins, as with anything bound.
        assert structlog.contextvars.merge_contextvars(
            None, "info", {"correlation_id": "mine"}) == {"correlation_id": "mine"}
    assert structlog.contextvars.get_contextvars() == {}


def test_clear_contextvars_clears_the_id_and_readers_see_none():
    with corr.bind_correlation_id():
        structlog.contextvars.clear_contextvars()  # sets the variable to Ellipsis
        assert corr.correlation_id_var.get() is Ellipsis
        assert corr.get_correlation_id() is None
        assert structlog.contextvars.get_contextvars() == {}
        again = corr.ensure_correlation_id()
        assert corr.valid_correlation_id(again) and corr.get_correlation_id() == again
        assert corr.inject({})["correlation_id"] == again
    assert corr.get_correlation_id() is None


def test_after_clear_contextvars_log_lines_carry_no_id_and_are_still_written():
    from promkit.instrument._access_line import access_logger
    from promkit.instrument._stage_line import StageLineWriter
    from tests._log_helpers import configured

    with configured() as sink, corr.bind_correlation_id():
        structlog.contextvars.clear_contextvars()
        structlog.get_logger("app").info("hello")
        access_logger().log_request("GET", "/items/{id}", 200, 0.01)
        StageLineWriter("promkit.worker").completed("ocr", 0.01, None)
        lines = sink.events()
    assert [line["event"] for line in lines] == ["hello", "http_request", "stage completed"]
    assert all("correlation_id" not in line for line in lines), lines


def test_no_or_new_correlation_id_outside_the_correlation_module():
    # One rule: entry points call resolve_correlation_id, never "... or new_correlation_id()".
    root = Path(corr.__file__).resolve().parent.parent
    offenders = [
        f"{path.relative_to(root)}:{number}"
        for folder in ("instrument", "exporters", "promkit")
        for path in sorted((root / folder).rglob("*.py"))
        if path.name != "correlation.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\bor\s+(\w+\.)*new_correlation_id\(", line)
    ]
    assert offenders == []


# ------------------------------------------------- the same rule at every entry point

A, B, C = str(uuid.uuid4()), uuid.uuid4().hex, str(uuid.uuid4())
BAD = "evil\r\nSet-Cookie: x=1"


def _http(first, second, registry, kind="http"):
    """(ID seen by the app, structlog context seen by the app) through the middleware."""
    seen = {}

    async def app(scope, receive, send):
        seen["cid"] = corr.get_correlation_id()
        seen["context"] = structlog.contextvars.merge_contextvars(None, "info", {})
        if kind == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b""})
        else:
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": 1000})

    headers = [(name, value.encode()) for name, value in
               ((b"x-correlation-id", first), (b"x-request-id", second)) if value is not None]
    scope = {"type": kind, "method": "GET", "path": "/x", "root_path": "", "headers": headers,
             "query_string": b""}

    async def receive():
        return {"type": "http.request" if kind == "http" else "websocket.connect"}

    async def send(message):
        pass

    middleware = HttpMetricsMiddleware(app, registry=registry, log_requests=False)
    asyncio.run(middleware(scope, receive, send))  # the task copies this context
    return seen["cid"], seen["context"]


def _payload(first, second):
    payload = {"job_id": "j-42", "job_type": "ocr", "created_at": time.time()}
    for key, value in (("correlation_id", first), ("X-Request-ID", second)):
        if value is not None:
            payload[key] = value
    return payload


def _inside_job():
    return corr.get_correlation_id(), structlog.contextvars.merge_contextvars(None, "info", {})


def _tracker_created(first, second, registry):
    return JobTracker(registry).created(_payload(first, second), "ocr")["correlation_id"], None


def _tracker_run(first, second, registry):
    with JobTracker(registry).run(_payload(first, second)):
        return _inside_job()


def _tracker_job(first, second, registry):
    @JobTracker(registry).job()
    def ocr(**_kwargs):
        return _inside_job()

    return ocr(**_payload(first, second))


def _tracker_started(first, second, registry):
    run = JobTracker(registry).started(_payload(first, second))
    try:
        return _inside_job()
    finally:
        run.succeeded()


def _queue_job_run(first, second, registry):
    with Job(QueueSpec("list", "q"), _payload(first, second)).run(registry=registry):
        return _inside_job()


def _queue_job_bound(first, second, registry):
    with Job(QueueSpec("list", "q"), _payload(first, second)).bound():
        return _inside_job()


def _webhook(first, second, registry):
    seen = {}

    def handle(request):
        seen["header"] = request.headers[corr.CORRELATION_HEADER]
        seen["inside"] = _inside_job()
        return httpx.Response(200)

    body = {} if second is None else {"correlation_id": second}
    headers = {} if first is None else {corr.CORRELATION_HEADER: first}
    with httpx.Client(transport=httpx.MockTransport(handle)) as client:
        send_webhook("http://x/hook", body, client=client, headers=headers, registry=registry)
    assert seen["inside"][0] == seen["header"]  # bound while the call runs
    return seen["header"], seen["inside"][1]


ENTRY_POINTS = {
    "http": _http,
    "websocket": functools.partial(_http, kind="websocket"),
    "JobTracker.created": _tracker_created,
    "JobTracker.run": _tracker_run,
    "JobTracker.job": _tracker_job,
    "JobTracker.started": _tracker_started,
    "Job.run": _queue_job_run,
    "Job.bound": _queue_job_bound,
    "webhook": _webhook,
}


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize(("first", "second", "bound", "expected"), [
    (A, B, C, A),  # the carrier's first key wins
    (BAD, B, C, B),  # else its next key
    (BAD, BAD, C, C),  # else the ID already bound
    (None, None, None, "new"),  # else a new one
], ids=["first-key", "second-key", "bound", "new"])
def test_every_entry_point_follows_the_same_rule(entry, first, second, bound, expected,
                                                 registry):
    with corr.bind_correlation_id(bound) if bound else contextlib.nullcontext():
        cid, context = ENTRY_POINTS[entry](first, second, registry)
        assert corr.get_correlation_id() == bound  # restored after the entry point
    if entry == "JobTracker.job" and expected == B:
        # The decorator's carrier is promkit's payload fields in the kwargs: no X-Request-ID.
        expected = C
    if expected == "new":
        assert corr.valid_correlation_id(cid) and cid not in (A, B, C)
    else:
        assert cid == expected
    if context is not None:  # plain structlog (merge_contextvars alone) sees it
        assert context["correlation_id"] == cid
        if entry.startswith("Job"):
            assert context["job_id"] == "j-42"
