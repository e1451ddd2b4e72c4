"""promkit's multiprocess merge gives prometheus-client's samples; compaction keeps them exact.

Files are written with prometheus-client's own ``MmapedDict`` under process
identifiers: names like ``w1`` for processes that are never "dead" (not
pids), and the pids of real ``sleep`` processes where a test kills a process.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client import multiprocess as pc_mp
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_text

from promkit.exporters import _mp_compact, _multiprocess
from promkit.exporters._mp_files import directory_lock
from promkit.exporters._multiprocess import (
    cleanup_dead_processes,
    mark_process_dead,
    multiprocess_exposition,
    multiprocess_json,
)
from promkit.instrument import MetricsRegistry

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
MODES = ("all", "liveall", "sum", "livesum", "max", "livemax", "min", "livemin", "mostrecent",
         "livemostrecent")


@pytest.fixture(autouse=True)
def fresh_readers() -> Iterator[None]:
    _multiprocess._readers.clear()
    yield
    _multiprocess._readers.clear()


def write(path: Path, name: str, entries: list[tuple[str, float, float]]) -> None:
    d = MmapedDict(str(path / name))
    try:
        for key, value, stamp in entries:
            d.write_value(key, value, stamp)
    finally:
        d.close()


def counter(value: float, route: str = "/a") -> tuple[str, float, float]:
    return (mmap_key("reqs", "reqs_total", ["route"], [route], "Requests."), value, 0.0)


def bucket(le: str, value: float, route: str = "/a") -> tuple[str, float, float]:
    return (mmap_key("lat_seconds", "lat_seconds_bucket", ["route", "le"], [route, le],
                     "Latency."), value, 0.0)


def hsum(value: float, route: str = "/a") -> tuple[str, float, float]:
    return (mmap_key("lat_seconds", "lat_seconds_sum", ["route"], [route], "Latency."), value, 0.0)


def gauge(mode: str, value: float, stamp: float = 0.0, k: str = "x") -> tuple[str, float, float]:
    return (mmap_key(f"g_{mode}", f"g_{mode}", ["k"], [k], f"Gauge {mode}."), value, stamp)


def write_process(path: Path, ident: str, scale: float) -> None:
    write(path, f"counter_{ident}.db", [counter(3 * scale), counter(scale, "/b")])
    write(path, f"histogram_{ident}.db",
          [bucket("0.1", scale), bucket("1.0", 2 * scale), bucket("+Inf", 1),
           hsum(0.25 * scale), bucket("0.1", 1, "/b"), bucket("+Inf", 0, "/b"), hsum(0.05, "/b")])
    write(path, f"summary_{ident}.db", [
        (mmap_key("sz", "sz_count", [], [], "Size."), 2 * scale, 0.0),
        (mmap_key("sz", "sz_sum", [], [], "Size."), 10.5 * scale, 0.0)])
    for mode in MODES:
        stamp = 100.0 + scale if "mostrecent" in mode else 0.0
        write(path, f"gauge_{mode}_{ident}.db", [gauge(mode, scale * 1.5, stamp)])


def parsed(text: str, openmetrics: bool = False) -> Samples:
    parse = parse_openmetrics if openmetrics else parse_text
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in parse(text) for s in family.samples}


def prometheus_client_samples(path: Path) -> Samples:
    registry = CollectorRegistry()
    pc_mp.MultiProcessCollector(registry, str(path))
    return parsed(generate_latest(registry).decode())


def counts(samples: Samples) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Counters, histogram buckets/counts and summary counts: what must never go down."""
    return {k: v for k, v in samples.items()
            if k[0].endswith(("_total", "_bucket", "_count"))}


def test_same_samples_as_prometheus_client_in_every_format_and_after_changes(tmp_path):
    for ident, scale in (("w1", 1.0), ("w2", 2.0), ("w3", 4.0)):
        write_process(tmp_path, ident, scale)
    expected = prometheus_client_samples(tmp_path)
    assert parsed(multiprocess_exposition(path=str(tmp_path))) == expected
    assert expected[("reqs_total", frozenset({("route", "/a")}))] == 21
    assert expected[("g_max", frozenset({("k", "x")}))] == 6.0
    assert expected[("g_mostrecent", frozenset({("k", "x")}))] == 6.0
    assert expected[("g_all", frozenset({("k", "x"), ("pid", "w2")}))] == 3.0

    # Values change in place, a file grows, a new process appears: the next scrape sees it all.
    write(tmp_path, "counter_w1.db", [counter(100), counter(1, "/new")])
    write(tmp_path, "gauge_max_w2.db", [gauge("max", 99.0)])
    write_process(tmp_path, "w4", 5.0)
    expected = prometheus_client_samples(tmp_path)
    text = multiprocess_exposition(path=str(tmp_path))
    assert parsed(text) == expected
    assert expected[("reqs_total", frozenset({("route", "/a")}))] == 100 + 6 + 12 + 15
    assert expected[("reqs_total", frozenset({("route", "/new")}))] == 1

    # OpenMetrics, strictly parsed, carries the same samples; each label set grouped.
    om = multiprocess_exposition(True, path=str(tmp_path))
    assert om.endswith("# EOF\n")
    assert parsed(om, openmetrics=True) == expected
    # JSON agrees too.
    data = {m["name"]: m for m in multiprocess_json(path=str(tmp_path))["metrics"]}
    (hist_a,) = [s for s in data["lat_seconds"]["samples"] if s["labels"] == {"route": "/a"}]
    assert hist_a["count"] == expected[("lat_seconds_count", frozenset({("route", "/a")}))]
    assert hist_a["buckets"]["+Inf"] == hist_a["count"]


def sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sleep", "120"])


def kill(proc: subprocess.Popen[bytes]) -> None:
    proc.kill()
    proc.wait(20)


def test_dead_processes_fold_into_archives_with_exact_totals(tmp_path):
    workers = [sleeper() for _ in range(4)]
    try:
        for i, proc in enumerate(workers):
            write_process(tmp_path, str(proc.pid), float(i + 1))
        before = parsed(multiprocess_exposition(path=str(tmp_path)))
        assert before == prometheus_client_samples(tmp_path)
        files_before = len(list(tmp_path.glob("*.db")))

        kill(workers[0])
        kill(workers[1])
        mark_process_dead(workers[0].pid, str(tmp_path))  # gunicorn's child_exit
        left = [p.name for p in tmp_path.glob(f"*_{workers[0].pid}.db")]
        assert left == [f"gauge_all_{workers[0].pid}.db"]  # `all` keeps one per process
        assert (tmp_path / "counter_archive.db").exists()
        # The other one is found dead by the scrape's cleanup.
        after = parsed(multiprocess_exposition(path=str(tmp_path)))
        assert len(list(tmp_path.glob(f"*_{workers[1].pid}.db"))) == 1
        # Counts exact; live gauges of the dead gone, other gauges kept by their mode.
        assert counts(after) == counts(before)
        assert after[("g_livesum", frozenset({("k", "x")}))] == (3 + 4) * 1.5
        assert after[("g_sum", frozenset({("k", "x")}))] == (1 + 2 + 3 + 4) * 1.5
        assert after[("g_max", frozenset({("k", "x")}))] == 6.0
        assert after[("g_min", frozenset({("k", "x")}))] == 1.5
        assert after[("g_mostrecent", frozenset({("k", "x")}))] == 6.0
        assert after[("g_livemin", frozenset({("k", "x")}))] == 4.5
        pids = {dict(k[1]).get("pid") for k in after if k[0] == "g_all"}
        assert pids == {str(p.pid) for p in workers}  # `all` keeps dead processes' series
        # prometheus-client's own collector reads the archives alike.
        assert prometheus_client_samples(tmp_path) == after
        # One archive per type and mode replaces the dead processes' files.
        assert len(list(tmp_path.glob("*.db"))) < files_before

        for proc in workers[2:]:
            kill(proc)
        assert sorted(cleanup_dead_processes(str(tmp_path))) == sorted(p.pid for p in workers[2:])
        final = parsed(multiprocess_exposition(path=str(tmp_path)))
        assert counts(final) == counts(before)
        assert ("g_livesum", frozenset({("k", "x")})) not in final
        names = sorted(p.name for p in tmp_path.glob("*.db"))
        assert [n for n in names if "_all_" not in n] == sorted(
            ["counter_archive.db", "histogram_archive.db", "summary_archive.db",
             "gauge_sum_archive.db", "gauge_max_archive.db", "gauge_min_archive.db",
             "gauge_mostrecent_archive.db"])
    finally:
        for proc in workers:
            if proc.poll() is None:
                kill(proc)


def test_a_compaction_cut_short_neither_loses_nor_double_counts(tmp_path, monkeypatch):
    workers = [sleeper() for _ in range(3)]
    try:
        for i, proc in enumerate(workers):
            write_process(tmp_path, str(proc.pid), float(i + 1))
        before = counts(parsed(multiprocess_exposition(path=str(tmp_path))))

        # Crash between renaming the archives and deleting the folded files.
        kill(workers[0])
        real_remove = _mp_compact._remove
        monkeypatch.setattr(_mp_compact, "_remove", lambda path, name: None)
        _mp_compact.compact_dead_processes(str(tmp_path), [workers[0].pid])
        assert (tmp_path / f"counter_{workers[0].pid}.db").exists()  # left behind
        monkeypatch.setattr(_mp_compact, "_remove", real_remove)
        _multiprocess._readers.clear()  # a fresh process reads it: no double count
        assert counts(parsed(multiprocess_exposition(path=str(tmp_path)))) == before
        assert not (tmp_path / f"counter_{workers[0].pid}.db").exists()  # cleaned up since

        # Crash after writing a new archive but before renaming it: a temp file, ignored.
        kill(workers[1])
        def crash(src: str, dst: str) -> None:
            raise SystemExit("killed")

        monkeypatch.setattr(_mp_compact.os, "replace", crash)
        with pytest.raises(SystemExit):
            _mp_compact.compact_dead_processes(str(tmp_path), [workers[1].pid])
        monkeypatch.undo()
        assert list(tmp_path.glob(".*.tmp"))
        assert counts(prometheus_client_samples(tmp_path)) == before
        assert counts(parsed(multiprocess_exposition(path=str(tmp_path)))) == before
        assert not list(tmp_path.glob(".*.tmp"))
    finally:
        for proc in workers:
            if proc.poll() is None:
                kill(proc)


def test_a_corrupt_file_is_counted_logged_once_and_no_counter_goes_backwards(
        tmp_path, caplog):
    registry = MetricsRegistry(CollectorRegistry())
    live, dying = sleeper(), sleeper()
    try:
        write_process(tmp_path, "w1", 1.0)
        write_process(tmp_path, str(live.pid), 2.0)
        write_process(tmp_path, str(dying.pid), 3.0)
        before = counts(parsed(multiprocess_exposition(registry=registry, path=str(tmp_path))))

        # A live process's file and a dead process's file are cut short.
        for name in (f"counter_{live.pid}.db", f"histogram_{dying.pid}.db"):
            with open(tmp_path / name, "r+b") as f:
                f.truncate(100)
        kill(dying)
        with caplog.at_level(logging.WARNING, logger="promkit.exporters"):
            for _ in range(3):
                now = counts(parsed(multiprocess_exposition(registry=registry,
                                                            path=str(tmp_path))))
                assert now == before  # last good values kept
        # The dead one was folded from its last good values into the archive.
        assert not (tmp_path / f"histogram_{dying.pid}.db").exists()
        reports = [r for r in caplog.records if f"counter_{live.pid}.db" in r.getMessage()]
        assert len(reports) == 1
        errors = {s.labels["cause"]: s.value for f in registry.collector_registry.collect()
                  for s in f.samples if s.name == "promkit_instrumentation_errors_total"}
        assert errors == {"multiprocess_read:CorruptFileError": 1}

        # A process that never read the live file leaves it out: its counts are gone
        # from that process's view only for that file, never below what it saw before.
        _multiprocess._readers.clear()
        fresh = counts(parsed(multiprocess_exposition(path=str(tmp_path))))
        assert fresh[("lat_seconds_bucket", frozenset({("route", "/a"), ("le", "+Inf")}))] == \
            before[("lat_seconds_bucket", frozenset({("route", "/a"), ("le", "+Inf")}))]
        assert fresh[("reqs_total", frozenset({("route", "/a")}))] == 3 + 9
    finally:
        for proc in (live, dying):
            if proc.poll() is None:
                kill(proc)


def test_a_corrupt_archive_fails_no_scrape_and_loses_no_count(tmp_path):
    workers = [sleeper() for _ in range(2)]
    try:
        for i, proc in enumerate(workers):
            write_process(tmp_path, str(proc.pid), float(i + 1))
        kill(workers[0])
        before = counts(parsed(multiprocess_exposition(path=str(tmp_path))))  # compacts it
        with open(tmp_path / "counter_archive.db", "r+b") as f:
            f.truncate(40)
        kill(workers[1])
        for _ in range(2):
            assert counts(parsed(multiprocess_exposition(path=str(tmp_path)))) == before
        # Not folded into an archive it cannot read: its counter file stays.
        assert (tmp_path / f"counter_{workers[1].pid}.db").exists()
        assert not (tmp_path / f"histogram_{workers[1].pid}.db").exists()
    finally:
        for proc in workers:
            if proc.poll() is None:
                kill(proc)


def test_a_scrape_while_another_process_holds_the_lock_still_drops_dead_live_gauges(
        tmp_path, monkeypatch):
    workers = [sleeper() for _ in range(2)]
    try:
        for i, proc in enumerate(workers):
            write_process(tmp_path, str(proc.pid), float(i + 1))
        before = counts(parsed(multiprocess_exposition(path=str(tmp_path))))
        kill(workers[0])
        # Another process is reading (shared lock): the scrape cannot compact now.
        with directory_lock(str(tmp_path), exclusive=False):
            assert cleanup_dead_processes(str(tmp_path)) == []
            samples = parsed(multiprocess_exposition(path=str(tmp_path)))
            # gunicorn's child_exit waits a bounded time, then leaves it to a scrape.
            monkeypatch.setattr(_multiprocess, "_HOOK_WAIT", 0.05)
            mark_process_dead(workers[0].pid, str(tmp_path))
        assert (tmp_path / f"counter_{workers[0].pid}.db").exists()  # not compacted yet
        assert counts(samples) == before
        assert samples[("g_livesum", frozenset({("k", "x")}))] == 3.0  # only the live one
        assert cleanup_dead_processes(str(tmp_path)) == [workers[0].pid]  # lock free again
    finally:
        for proc in workers:
            if proc.poll() is None:
                kill(proc)


def test_series_of_files_that_are_gone_are_forgotten(tmp_path):
    # liveall gauges of processes that came and went: one series per pid each.
    for round_ in range(10):
        names = [f"gauge_liveall_r{round_}w{i}.db" for i in range(100)]
        for name in names:
            write(tmp_path, name, [gauge("liveall", 1.0)])
        samples = parsed(multiprocess_exposition(path=str(tmp_path)))
        assert len(samples) == 100
        for name in names:
            (tmp_path / name).unlink()
    reader = _multiprocess._readers[os.path.realpath(tmp_path)][0]
    assert reader._nslots <= 2 * 100 + 256


def test_a_forked_child_starts_with_no_reader_and_free_locks(tmp_path):
    write_process(tmp_path, "w1", 1.0)
    multiprocess_exposition(path=str(tmp_path))
    _, lock = _multiprocess._readers[os.path.realpath(tmp_path)]
    with lock:  # a scrape in progress in the parent when it forks
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            try:
                ok = not _multiprocess._readers and "reqs_total" in multiprocess_exposition(
                    path=str(tmp_path))
            finally:
                os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_a_mostrecent_gauge_set_through_promkit_shows_its_latest_value(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    registry = MetricsRegistry(CollectorRegistry(), multiprocess=True)
    gauge = registry.gauge("last_batch_size", "Size of the last batch.",
                           multiprocess_mode="mostrecent")
    gauge.set(3)
    gauge.set(7)
    samples = parsed(multiprocess_exposition(path=str(tmp_path)))
    assert samples[("last_batch_size", frozenset())] == 7
    assert prometheus_client_samples(tmp_path) == samples


def test_mark_process_dead_of_a_running_process_only_drops_its_live_gauges(tmp_path):
    write_process(tmp_path, str(os.getpid()), 1.0)
    mark_process_dead(os.getpid(), str(tmp_path))
    assert not list(tmp_path.glob("gauge_live*.db"))
    assert (tmp_path / f"counter_{os.getpid()}.db").exists()
    assert not (tmp_path / "counter_archive.db").exists()


def test_recycled_pool_keeps_a_bounded_directory(tmp_path):
    # Real processes started and killed, as a pool recycling its workers.
    total = 0.0
    peak_files = 0
    for round_ in range(12):
        procs = [sleeper() for _ in range(2)]
        for proc in procs:
            write(tmp_path, f"counter_{proc.pid}.db", [counter(1.0 + round_)])
            write(tmp_path, f"gauge_livesum_{proc.pid}.db", [gauge("livesum", 1.0)])
            total += 1.0 + round_
        samples = parsed(multiprocess_exposition(path=str(tmp_path)))
        assert samples[("reqs_total", frozenset({("route", "/a")}))] == total
        assert samples[("g_livesum", frozenset({("k", "x")}))] == 2.0
        peak_files = max(peak_files, len(list(tmp_path.glob("*.db"))))
        for proc in procs:
            kill(proc)
            if round_ % 2:
                mark_process_dead(proc.pid, str(tmp_path))
    samples = parsed(multiprocess_exposition(path=str(tmp_path)))
    assert samples[("reqs_total", frozenset({("route", "/a")}))] == total
    assert peak_files <= 5  # 2 workers x 2 files + the archive
    assert sorted(p.name for p in tmp_path.glob("*.db")) == ["counter_archive.db"]

