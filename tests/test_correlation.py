"""Correlation IDs: validation, generation, binding, carrying across boundaries."""

import asyncio
import os
import threading
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from promkit.instrument import correlation as corr


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
