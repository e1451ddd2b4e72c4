"""Load client for the stall benchmark, run in its own process.

``python -m benchmarks._loadclient PORT MODE DURATION CONNS WARMUP [FORMAT]``
keeps CONNS keep-alive HTTP/1.1 connections busy with ``GET /ping`` (closed
loop: each sends its next request as soon as the previous answer is complete)
and, depending on MODE, scrapes ``/metrics/`` over one more connection:
``none``, ``1s`` (one scrape started every second) or ``stress`` (back to
back). FORMAT (default ``text``) is asked for as the exporters are asked:
``text`` with ``Accept: text/plain``, ``openmetrics`` with ``Accept:
application/openmetrics-text``, ``json`` with ``?format=json``; no gzip. Prints
one JSON object: ping latency p50/p99/max (ms), pings/s, scrape durations and
the client's own CPU use (to show the client is not the bottleneck).

A raw asyncio client (no HTTP library) so that the client costs far less
than the server it measures.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time

from benchmarks._common import percentile

PING = b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
SCRAPES = {
    "text": b"GET /metrics/ HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/plain\r\n\r\n",
    "openmetrics": b"GET /metrics/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   b"Accept: application/openmetrics-text\r\n\r\n",
    "json": b"GET /metrics/?format=json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
}


async def read_response(reader: asyncio.StreamReader) -> int:
    """Read one response (Content-Length or chunked); return its body size."""
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"unexpected response: {head[:80]!r}")
    lower = head.lower()
    i = lower.find(b"content-length:")
    if i >= 0:
        n = int(lower[i + 15:lower.index(b"\r\n", i)])
        await reader.readexactly(n)
        return n
    if b"transfer-encoding: chunked" not in lower:
        raise RuntimeError("response without content-length or chunked encoding")
    total = 0
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")  # end of (empty) trailers
            return total
        await reader.readexactly(size + 2)
        total += size


async def pinger(port: int, start: float, stop: float, out: list[tuple[float, float]]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    clock = time.perf_counter
    try:
        while True:
            t0 = clock()
            if t0 >= stop:
                return
            writer.write(PING)
            await read_response(reader)
            if t0 >= start:
                out.append((t0, clock()))
    finally:
        writer.close()


async def scraper(port: int, mode: str, fmt: str, start: float, stop: float,
                  out: list[float]) -> None:
    request = SCRAPES[fmt]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    clock = time.perf_counter
    try:
        next_at = start
        while True:
            if mode == "1s":
                now = clock()
                if next_at > now:
                    await asyncio.sleep(next_at - now)
                next_at += 1.0
            t0 = clock()
            if t0 >= stop:
                return
            writer.write(request)
            await read_response(reader)
            if t0 >= start:
                out.append((clock() - t0) * 1e3)
    finally:
        writer.close()


async def main(port: int, mode: str, duration: float, conns: int, warmup: float,
               fmt: str = "text") -> dict:
    now = time.perf_counter()
    start, stop = now + warmup, now + warmup + duration
    pings: list[tuple[float, float]] = []
    scrapes: list[float] = []
    tasks = [pinger(port, start, stop, pings) for _ in range(conns)]
    if mode != "none":
        tasks.append(scraper(port, mode, fmt, start, stop, scrapes))
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    await asyncio.gather(*tasks)
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    wall = time.perf_counter() - now
    lat = sorted((t1 - t0) * 1e3 for t0, t1 in pings)
    done = sum(1 for _, t1 in pings if t1 < stop)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    return {
        "mode": mode,
        "format": fmt,
        "pings": len(lat),
        "p50_ms": percentile(lat, 50),
        "p99_ms": percentile(lat, 99),
        "max_ms": lat[-1] if lat else float("nan"),
        "rps": done / duration,
        "scrapes_ms": scrapes,
        "client_cpu": cpu / wall,
    }


if __name__ == "__main__":
    port_, mode_, duration_, conns_, warmup_ = sys.argv[1:6]
    fmt_ = sys.argv[6] if len(sys.argv) > 6 else "text"
    result = asyncio.run(main(int(port_), mode_, float(duration_), int(conns_), float(warmup_),
                              fmt_))
    print(json.dumps(result))
