"""The JSON-lines file sink: logrotate, backups=0, several processes on one file."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from promkit.instrument import logs
from promkit.instrument._logs_sinks import RotatingFileSink


@pytest.fixture
def file_logging(tmp_path: Path) -> Iterator[Path]:
    """configure_logging to a file only, nothing else on the root logger; yields the path."""
    path = tmp_path / "events.jsonl"
    root = logging.getLogger()
    saved = list(root.handlers)
    for handler in saved:
        root.removeHandler(handler)
    logs.configure_logging("svc", stream=None, file=path, file_max_bytes=0)
    try:
        yield path
    finally:
        logs.reset_logging()
        for handler in saved:
            root.addHandler(handler)


def _events(path: Path) -> list[str]:
    return [json.loads(line)["event"] for line in path.read_text("utf-8").splitlines()]


def test_a_file_moved_by_logrotate_is_followed_and_nothing_is_lost(file_logging: Path) -> None:
    log = logs.get_logger()
    for i in range(5):
        log.info(f"before_{i}")
    rotated = file_logging.with_name("events.jsonl.1")
    file_logging.rename(rotated)  # logrotate's default: rename, then create
    file_logging.touch()
    for i in range(5):
        log.info(f"after_{i}")
    assert _events(rotated) == [f"before_{i}" for i in range(5)]
    assert _events(file_logging) == [f"after_{i}" for i in range(5)]
    # Removed outright: a new file at the path.
    file_logging.unlink()
    log.info("recreated")
    assert _events(file_logging) == ["recreated"]


def test_a_relative_path_stays_where_it_was_when_the_cwd_changes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    sink = RotatingFileSink("events.jsonl", max_bytes=0, backups=0)
    sink.write_line('{"event":"first"}')
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    sink.write_line('{"event":"second"}')
    sink.close()
    assert _events(tmp_path / "events.jsonl") == ["first", "second"]
    assert not (tmp_path / "elsewhere" / "events.jsonl").exists()


def test_copytruncate_leaves_no_hole(file_logging: Path) -> None:
    log = logs.get_logger()
    log.info("before")
    os.truncate(file_logging, 0)  # logrotate copytruncate: copy, then truncate in place
    log.info("after")
    assert file_logging.read_bytes().startswith(b'{"')  # appended at the new end, no NULs
    assert _events(file_logging) == ["after"]


def test_backups_0_never_rotates_or_truncates(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    history = '{"event":"from_before"}\n' * 20
    path.write_text(history)
    sink = RotatingFileSink(path, max_bytes=100, backups=0)
    for i in range(10):
        sink.write_line(json.dumps({"event": f"line_{i}"}))
    sink.close()
    assert path.read_text().startswith(history)
    assert _events(path)[-10:] == [f"line_{i}" for i in range(10)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.jsonl"]


_WRITER = """
import json, os, sys, time
from pathlib import Path
from promkit.instrument import logs
path, me, lines = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
logs.configure_logging("svc", stream=None, file=path, file_max_bytes=int(sys.argv[4]),
                       file_backups=1000)
log = logs.get_logger()
(path.parent / f"ready-{me}").touch()
deadline = time.monotonic() + 30
while not (path.parent / "go").exists() and time.monotonic() < deadline:
    time.sleep(0.001)
for i in range(lines):
    log.info("line", writer=me, n=i, pad="x" * (i % 300))
"""


@pytest.mark.parametrize("max_bytes", [0, 40_000], ids=["one file", "rotating"])
def test_two_processes_append_whole_lines_to_one_file(tmp_path: Path, max_bytes: int) -> None:
    path = tmp_path / "events.jsonl"
    lines = 1000
    writers = [subprocess.Popen([sys.executable, "-c", _WRITER, str(path), name, str(lines),
                                 str(max_bytes)]) for name in ("a", "b")]
    try:
        deadline = time.monotonic() + 60
        while not all((tmp_path / f"ready-{n}").exists() for n in "ab"):
            assert time.monotonic() < deadline, "the writers did not start"
            assert all(w.poll() is None for w in writers), "a writer exited early"
            time.sleep(0.01)
        (tmp_path / "go").touch()  # both start writing at once
        for writer in writers:
            assert writer.wait(timeout=60) == 0
    finally:
        for writer in writers:
            if writer.poll() is None:
                writer.kill()
    seen: set[tuple[str, int]] = set()
    files = sorted(tmp_path.glob("events.jsonl*"))
    for file in files:
        for line in file.read_text("utf-8").splitlines():
            event = json.loads(line)  # every line whole
            seen.add((event["extra"]["writer"], event["extra"]["n"]))
    assert seen == {(w, i) for w in "ab" for i in range(lines)}  # none lost or duplicated
    assert sum(len(f.read_text("utf-8").splitlines()) for f in files) == 2 * lines
    if max_bytes:
        assert len(files) > 5  # it rotated, from both processes
        # Each file was rotated at the limit as the file (both writers' lines) had it; a
        # line may slip in between another process's size check and its write.
        longest = max(len(line) + 1 for f in files for line in f.read_text().splitlines())
        assert max(f.stat().st_size for f in files) <= max_bytes + 2 * longest
