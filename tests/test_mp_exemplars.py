"""Exemplars in multiprocess mode: per-process files, throttled atomic writes, merge at scrape."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_text
from test_exemplar_files import bucket, write_file

from promkit.exporters._multiprocess import (
    cleanup_dead_processes,
    mark_process_dead,
    multiprocess_exposition,
    multiprocess_json,
)
from promkit.instrument import MetricsRegistry, exemplar_files
from promkit.instrument import _mp_exemplars as mpx
from promkit.instrument._mp_children import MultiprocessCounterChild, MultiprocessHistogramChild
from promkit.instrument._safety import FailureSink
from promkit.instrument.catalog import MetricSpec

BOUNDS = [0.1, 1.0]
HIST = MetricSpec(name="work_seconds", kind="histogram", help="Work.", labels=("route",),
                  buckets=tuple(BOUNDS))
COUNTER = MetricSpec(name="jobs_done_total", kind="counter", help="Jobs.", labels=("kind",))


class FakeValue:
    """Stands in for prometheus-client's mmap value class (its file cache is per process)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.value = 0.0

    def inc(self, amount: float) -> None:
        self.value += amount

    def get(self) -> float:
        return self.value


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A store for tmp_path with a 0.1 s interval, used by children created in this test."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    s = mpx.ExemplarStore(str(tmp_path), FailureSink(), interval=0.1)
    monkeypatch.setitem(mpx._stores, str(tmp_path), s)
    yield s
    s.close()


def hist_child(route: str = "/a") -> MultiprocessHistogramChild:
    return MultiprocessHistogramChild((route,), FailureSink(), BOUNDS, HIST, FakeValue)


def counter_child(kind: str = "x") -> MultiprocessCounterChild:
    return MultiprocessCounterChild((kind,), FailureSink(), COUNTER, FakeValue)


def own_file(path: Path) -> Path:
    return path / f"exemplars_{os.getpid()}.json"


# --------------------------------------------------------------------- recording side


def test_recording_never_writes_and_the_thread_flushes_at_most_once_per_interval(
        store, tmp_path, monkeypatch):
    writes: list[str] = []
    real_replace = os.replace

    def counting_replace(src: str, dst: str) -> None:
        writes.append(threading.current_thread().name)
        real_replace(src, dst)

    monkeypatch.setattr(mpx.os, "replace", counting_replace)
    child, counter = hist_child(), counter_child()
    deadline = time.monotonic() + 0.65
    n = 0
    while time.monotonic() < deadline:
        child.observe(0.05, {"trace_id": f"t{n}"})
        counter.inc(exemplar={"trace_id": f"c{n}"})
        n += 1
    assert n > 1000
    # ~6 intervals of 0.1 s: at most one write each, all by the flush thread.
    assert 2 <= len(writes) <= 8, writes
    assert set(writes) == {"promkit-exemplar-flush"}

    # The last exemplar reaches the file within an interval, then writes stop (nothing new).
    def newest_in_file() -> bool:
        data = json.loads(own_file(tmp_path).read_text())
        return {e[2]["trace_id"] for e in data["exemplars"]} == {f"t{n - 1}", f"c{n - 1}"}

    wait_for(newest_in_file, 2.0)
    # At most one write more (an exemplar recorded while the last flush was reading
    # re-dirties the store: a loaded machine widens that window), then none.
    at_newest = len(writes)
    time.sleep(0.5)
    settled = len(writes)
    assert settled - at_newest <= 1, writes
    time.sleep(0.5)
    assert len(writes) == settled


def test_no_file_until_the_thread_runs_then_flush_local_writes(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    slow = mpx.ExemplarStore(str(tmp_path), FailureSink(), interval=60)
    monkeypatch.setitem(mpx._stores, str(tmp_path), slow)
    try:
        child = hist_child()
        for i in range(500):
            child.observe(i / 100, {"trace_id": f"t{i}"})
        assert not own_file(tmp_path).exists()  # nothing written on the recording path
        assert slow.dirty
        mpx.flush_local(str(tmp_path))  # what a scrape in this process does first
        data = json.loads(own_file(tmp_path).read_text())
        by_le = {dict(map(tuple, e[1]))["le"]: e[2]["trace_id"] for e in data["exemplars"]}
        assert by_le == {"0.1": "t10", "1.0": "t100", "+Inf": "t499"}
        assert not slow.dirty and slow.flushes == 1
        mpx.flush_local(str(tmp_path))  # not dirty: no second write
        assert slow.flushes == 1
    finally:
        slow.close()


def test_writes_are_atomic_replaces_a_reader_never_sees_a_torn_file(store, tmp_path, monkeypatch):
    calls: list[tuple[str, str]] = []
    real_replace = os.replace

    def recording_replace(src: str, dst: str) -> None:
        calls.append((os.path.basename(src), os.path.basename(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(mpx.os, "replace", recording_replace)
    children = [hist_child(f"/r{i}") for i in range(300)]  # 900 slots: a ~100 KB file
    for i, child in enumerate(children):
        child.observe(0.5, {"trace_id": f"{i:032x}"})
    store.flush()
    stop = threading.Event()
    errors: list[BaseException] = []
    reads = 0

    def reader() -> None:
        nonlocal reads
        while not stop.is_set():
            try:
                exemplar_files._parse(own_file(tmp_path).read_text())
                reads += 1
            except BaseException as exc:  # pragma: no cover - the failure we look for
                errors.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for round_ in range(60):
            for child in children:
                child.observe(0.05, {"trace_id": f"{round_:032x}"})
            store.flush()
    finally:
        stop.set()
        thread.join()
    assert not errors
    assert reads > 0
    pid = os.getpid()
    assert set(calls) == {(f"exemplars_{pid}.json.tmp", f"exemplars_{pid}.json")}
    assert not (tmp_path / f"exemplars_{pid}.json.tmp").exists()


def test_file_is_bounded_and_invalid_exemplars_are_dropped_and_counted(tmp_path, monkeypatch,
                                                                       registry):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    small = mpx.ExemplarStore(str(tmp_path), registry.failures, interval=60, max_entries=5)
    monkeypatch.setitem(mpx._stores, str(tmp_path), small)
    try:
        counters = [counter_child(f"k{i}") for i in range(8)]
        for i, child in enumerate(counters):
            child.inc(exemplar={"trace_id": f"t{i}"})
            time.sleep(0.002)  # distinct timestamps: the newest five are kept
        fits = {"a": "x" * 127}  # 128 characters: the OpenMetrics maximum
        too_big = {"a": "x" * 128}
        hist_child("/fits").observe(0.05, fits)
        hist_child("/big").observe(0.05, too_big)
        small.max_entries = 100
        small.flush()
        data = json.loads(own_file(tmp_path).read_text())
        routes = [dict(map(tuple, e[1])).get("route") for e in data["exemplars"]]
        assert "/fits" in routes and "/big" not in routes
        errors = {s.labels["cause"]: s.value
                  for f in registry.collector_registry.collect() for s in f.samples
                  if s.name == "promkit_instrumentation_errors_total"}
        assert errors == {"exemplar:ValueError": 1.0}
        small.flush()  # an unchanged bad exemplar is not counted again
        errors = {s.labels["cause"]: s.value
                  for f in registry.collector_registry.collect() for s in f.samples
                  if s.name == "promkit_instrumentation_errors_total"}
        assert errors == {"exemplar:ValueError": 1.0}

        small.max_entries = 5
        hist_child("/late").observe(0.05, {"trace_id": "late"})
        small.flush()
        data = json.loads(own_file(tmp_path).read_text())
        assert len(data["exemplars"]) == 5
        kept = {e[2].get("trace_id") for e in data["exemplars"]}
        assert "late" in kept and "t0" not in kept  # the newest win
    finally:
        small.close()


def _forked_child(path: str, queue: Any) -> None:
    child = _FORK_STATE["child"]
    child.observe(0.5, {"trace_id": "from-child"})
    mpx.flush_local(path)
    queue.put(os.getpid())


_FORK_STATE: dict[str, Any] = {}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_forgets_the_parents_exemplars(store, tmp_path):
    child = hist_child()
    child.observe(0.05, {"trace_id": "from-parent"})
    _FORK_STATE["child"] = child
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_forked_child, args=(str(tmp_path), queue))
    proc.start()
    pid = queue.get(timeout=20)
    proc.join(20)
    data = json.loads((tmp_path / f"exemplars_{pid}.json").read_text())
    assert [e[2]["trace_id"] for e in data["exemplars"]] == ["from-child"]
    store.flush()
    data = json.loads(own_file(tmp_path).read_text())
    assert [e[2]["trace_id"] for e in data["exemplars"]] == ["from-parent"]


# ------------------------------------------------------------------------ reading side


_WRITER = textwrap.dedent("""
    import sys
    from prometheus_client import CollectorRegistry
    from promkit.instrument import MetricsRegistry
    r = MetricsRegistry(CollectorRegistry())
    h = r.histogram("work_seconds", "Work.", ["route"], buckets=[0.1, 1.0], unit="seconds")
    c = r.counter("jobs_done_total", "Jobs.", ["kind"])
    tag = sys.argv[1]
    h.labels("/a").observe(0.05, {"trace_id": tag + "-fast"})
    if tag == "first":
        h.labels("/a").observe(0.5, {"trace_id": tag + "-slow"})
    h.labels("/b").observe(5.0)
    c.labels("x").inc(exemplar={"trace_id": tag + "-job"})
    c.labels("y").inc()
""")


def run_writer(path: Path, tag: str) -> int:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(path),
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run([sys.executable, "-c", _WRITER, tag], env=env, timeout=60)
    assert proc.returncode == 0
    return len(list(path.glob("exemplars_*.json")))


def test_openmetrics_scrape_carries_the_newest_exemplar_of_all_processes(tmp_path):
    # Each writer exits before its flush thread runs: the atexit hook writes its file.
    assert run_writer(tmp_path, "first") == 1
    time.sleep(0.01)
    assert run_writer(tmp_path, "second") == 2
    text = multiprocess_exposition(openmetrics=True, path=str(tmp_path))
    families = {f.name: f for f in parse_openmetrics(text)}  # the strict parser
    exemplars = {(s.name, tuple(sorted(s.labels.items()))):
                 (s.exemplar.labels["trace_id"] if s.exemplar else None)
                 for f in families.values() for s in f.samples}
    assert exemplars[bucket("0.1")] == "second-fast"  # both wrote it: the newest wins
    assert exemplars[bucket("1.0")] == "first-slow"  # only the first wrote it
    assert exemplars[bucket("+Inf")] is None
    assert exemplars[bucket("+Inf", "/b")] is None
    assert exemplars[("jobs_done_total", (("kind", "x"),))] == "second-job"
    assert exemplars[("jobs_done_total", (("kind", "y"),))] is None
    assert exemplars[("work_seconds_count", (("route", "/a"),))] is None
    hist = {s.labels["le"]: s.value for s in families["work_seconds"].samples
            if s.name == "work_seconds_bucket" and s.labels["route"] == "/a"}
    assert hist == {"0.1": 2, "1.0": 3, "+Inf": 3}
    # Text 0.0.4 and JSON have no exemplars and are unchanged.
    plain = multiprocess_exposition(path=str(tmp_path))
    assert " # {" not in plain
    assert list(parse_text(plain))
    json.dumps(multiprocess_json(path=str(tmp_path)), allow_nan=False)


def test_a_corrupt_exemplar_file_is_skipped_counted_and_logged_once(tmp_path, caplog):
    run_writer(tmp_path, "first")
    (tmp_path / "exemplars_999981.json").write_text('{"version": 1, "exemplars": [["x"')
    (tmp_path / "exemplars_999982.json").write_text(json.dumps(
        {"version": 1, "exemplars": [["work_seconds_bucket", [["le", "0.1"], ["route", "/a"]],
                                      {"trace_id": "x" * 200}, 0.05, time.time() + 99]]}))
    (tmp_path / "exemplars_999983.json").write_bytes(b"\xff\xfe not utf-8")
    registry = MetricsRegistry(CollectorRegistry())  # counts the skips
    # Keep the bad files although their pids are not running (they are fresh).
    with caplog.at_level(logging.WARNING, logger="promkit.exporters"):
        for _ in range(3):
            text = multiprocess_exposition(True, registry, path=str(tmp_path))
    families = {f.name: f for f in parse_openmetrics(text)}
    fast = next(s for s in families["work_seconds"].samples
                if s.name == "work_seconds_bucket" and s.labels == {"route": "/a", "le": "0.1"})
    assert fast.exemplar is not None and fast.exemplar.labels == {"trace_id": "first-fast"}
    for bad in ("999981", "999982", "999983"):
        reports = [r for r in caplog.records if f"exemplars_{bad}.json" in r.getMessage()]
        assert len(reports) == 1, bad
    errors = {s.labels["cause"]: s.value for f in registry.collector_registry.collect()
              for s in f.samples if s.name == "promkit_instrumentation_errors_total"}
    assert sum(v for k, v in errors.items() if k.startswith("multiprocess_exemplar_read:")) == 3


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(20)
    return proc.pid


def test_cleanup_keeps_fresh_files_of_dead_pids_and_removes_old_ones(tmp_path):
    dead_fresh, dead_old = _dead_pid(), _dead_pid()
    entry = ["jobs_done_total", [["kind", "x"]], {"trace_id": "t"}, 1.0, time.time()]
    fresh = write_file(tmp_path, dead_fresh, [entry])
    old = write_file(tmp_path, dead_old, [entry])
    live_old = write_file(tmp_path, os.getpid(), [entry])
    hour_ago = time.time() - exemplar_files.MAX_AGE_SECONDS - 60
    os.utime(old, (hour_ago, hour_ago))
    os.utime(live_old, (hour_ago, hour_ago))
    leftover_tmp = tmp_path / f"exemplars_{dead_fresh}.json.tmp"
    leftover_tmp.write_text("{")
    unrelated = tmp_path / "exemplars_notes.json"
    unrelated.write_text("{}")

    # mark_process_dead (gunicorn's child_exit) leaves exemplars: the counts stay too.
    mark_process_dead(dead_old, str(tmp_path))
    assert old.exists()
    assert cleanup_dead_processes(str(tmp_path)) == []  # no live-gauge files here
    assert fresh.exists() and live_old.exists() and unrelated.exists()
    assert not old.exists() and not leftover_tmp.exists()

    # The scrape runs the same cleanup.
    os.utime(fresh, (hour_ago, hour_ago))
    multiprocess_exposition(True, path=str(tmp_path))
    assert not fresh.exists() and live_old.exists()


def wait_for(check: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except (OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.02)
