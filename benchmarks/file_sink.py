"""The JSON-lines file sink per line, against the standard library's file handlers.

``python -m benchmarks.file_sink [--lines N] [--reps R]``: one preformatted
request line (~260 bytes) written ``N`` times to a fresh file in a temp
directory by promkit's ``RotatingFileSink`` (a ``stat`` of the path and one
``write(2)`` per line: follows logrotate, safe for several processes) and by
``logging.handlers.WatchedFileHandler`` (the stdlib's handler that follows
logrotate: a ``stat`` per line too) and ``RotatingFileHandler`` (size rotation,
does not follow a moved file), each handler with a formatter that returns the
line as is. Runs are interleaved, order rotated; the table gives the median
microseconds per line and the ratio to ``WatchedFileHandler``. No rotation
happens during a run (no size limit reached).
"""

from __future__ import annotations

import argparse
import logging
import logging.handlers
import os
import tempfile
import time
from collections.abc import Callable

from benchmarks._common import median, table

LINE = ('{"timestamp":"2026-12-06T05:30:00.123Z","level":"info","service":"api",'
        '"event":"http_request","correlation_id":"5b0c2f7e-1d2a-4c1b-9a7e-3f2d1c0b9a8e",'
        '"latency_ms":1.2,"http_method":"GET","http_path":"/items/{item_id}",'
        '"http_status":200}')


class _AsIs(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return str(record.msg)


def _promkit(path: str, lines: int) -> float:
    from promkit.instrument._logs_sinks import RotatingFileSink

    sink = RotatingFileSink(path, 0, 5)
    write = sink.write_line
    write(LINE)  # opened before timing, as for the handlers
    start = time.perf_counter()
    for _ in range(lines):
        write(LINE)
    elapsed = time.perf_counter() - start
    sink.close()
    return elapsed


def _stdlib(make: Callable[[str], logging.Handler]) -> Callable[[str, int], float]:
    def run(path: str, lines: int) -> float:
        handler = make(path)
        handler.setFormatter(_AsIs())
        record = logging.makeLogRecord({"msg": LINE})
        handler.handle(record)
        start = time.perf_counter()
        for _ in range(lines):
            handler.handle(record)
        elapsed = time.perf_counter() - start
        handler.close()
        return elapsed
    return run


ENTRIES: dict[str, Callable[[str, int], float]] = {
    "promkit RotatingFileSink": _promkit,
    "stdlib WatchedFileHandler": _stdlib(
        lambda p: logging.handlers.WatchedFileHandler(p, encoding="utf-8")),
    "stdlib RotatingFileHandler": _stdlib(
        lambda p: logging.handlers.RotatingFileHandler(p, maxBytes=2**40, backupCount=5,
                                                       encoding="utf-8")),
}


def run(lines: int, reps: int) -> dict[str, float]:
    """Median seconds per line of each entry."""
    times: dict[str, list[float]] = {name: [] for name in ENTRIES}
    names = list(ENTRIES)
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(reps):
            order = names[rep % len(names):] + names[:rep % len(names)]
            for name in order:
                path = os.path.join(tmp, f"{rep}-{len(times[name])}.jsonl")
                times[name].append(ENTRIES[name](path, lines) / lines)
                os.remove(path)
    return {name: median(values) for name, values in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.file_sink", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=20000)
    ap.add_argument("--reps", type=int, default=11)
    args = ap.parse_args()
    result = run(args.lines, args.reps)
    base = result["stdlib WatchedFileHandler"]
    print(table(["writer", "µs per line", "vs WatchedFileHandler"],
                [[name, f"{seconds * 1e6:.2f}", f"{seconds / base:.2f}x"]
                 for name, seconds in result.items()]))


if __name__ == "__main__":
    main()
