"""Instructions per request of the middleware entries, counted by callgrind.

``python -m benchmarks.instructions [ENTRY ...]`` runs each entry of the shared
harness (``../shared/bench/middleware_bench.py`` plus
:mod:`benchmarks.middleware_plugin`) under ``valgrind --tool=callgrind``
and prints the instructions one request costs, over bare Starlette and as a
multiple of the hand-written prometheus-client middleware's. Unlike the
timed benchmarks this is repeatable on a noisy machine (the same count
twice, whatever else runs), so it is the tool for deciding whether a change
to a hot path helps; the timed harness (``make bench``) stays the judge of
the targets, since instructions are not cycles.

Two drivers:

* ``inprocess`` (default): the harness's own ASGI driver, sequential awaits;
  the program runs ``--small`` and ``--large`` requests after a warm-up and
  the difference is divided by ``large - small``, so start-up cancels out.
* ``server``: the entry served by uvicorn (``--serve``) under callgrind,
  counters zeroed after a warm-up (``callgrind_control -z``) and dumped after
  ``--large`` requests from 10 keep-alive connections on 127.0.0.1 (the
  client runs outside valgrind). This includes h11's header handling.

``--driver stages`` counts the stage timers instead: instructions per call
of an empty stage (sync and async decorator) with ``@stage_timer`` with
nothing configured and at INFO (``configure_logging(stream=None)``, the
``stage completed`` line rendered into a null sink), against
``@Histogram.labels(...).time()`` (the async form inside a coroutine, as
``benchmarks.stages`` times it). The CPU clock's system call is not counted:
callgrind sees only user-space instructions.

Needs Debian's ``valgrind``; not part of ``make bench``. ``PK_PLUGIN=FILE``
loads another plugin file instead of :mod:`benchmarks.middleware_plugin`
(entries of your own, e.g. the middleware with one feature off).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._common import free_port, stop_process

ROOT = Path(__file__).resolve().parent.parent
HARNESS = ROOT.parent / "shared" / "bench" / "middleware_bench.py"
# PK_PLUGIN: another plugin file (e.g. variants of the promkit entries) instead of ours.
PLUGIN = Path(os.environ.get("PK_PLUGIN", "") or Path(__file__).resolve().parent
              / "middleware_plugin.py")
DEFAULT_ENTRIES = ("bare", "manual_prometheus_client", "promkit_metrics", "promkit_all",
                   "promkit_defaults", "peer_stack")

# Run inside valgrind by the inprocess driver: N requests after a warm-up.
_INPROCESS = """
import asyncio, sys
sys.path.insert(0, {harness_dir!r})
import middleware_bench as mb
mb.load_plugin({plugin!r})
entry = mb.ENTRY_FACTORIES[{name!r}]()
app = entry.app  # once: promkit's entries put their logging set-up in place when it is read
async def main(n):
    for i in range(300):
        await mb.asgi_request(app, mb.request_path(i))
    for i in range(n):
        await mb.asgi_request(app, mb.request_path(i))
asyncio.run(main({n}))
"""


# Run inside valgrind by the stages driver: N calls of one form after a warm-up.
_STAGES = """
import asyncio
from prometheus_client import CollectorRegistry, Histogram
from promkit.instrument import STANDARD_CATALOG, stage_timer
from promkit.instrument.logs import configure_logging, reset_logging
setup, form = {setup!r}, {form!r}
if setup == "info":
    configure_logging(service="bench", stream=None)
else:
    reset_logging()
buckets = STANDARD_CATALOG.get("job_stage_duration_seconds").buckets
child = Histogram("bench_stage_seconds", "x", ["stage"], buckets=buckets,
                  registry=CollectorRegistry()).labels("ocr")
if setup == "prometheus_client":
    fn = child.time()(lambda: None)
    async def body():
        pass
    async def afn():
        with child.time():
            return await body()
else:
    fn = stage_timer("ocr")(lambda: None)
    @stage_timer("ocr")
    async def afn():
        pass
async def many(n):
    for _ in range(n):
        await afn()
def run(n):
    if form == "sync decorator":
        for _ in range(n):
            fn()
    else:
        asyncio.run(many(n))
run(300)
run({n})
"""
STAGE_SETUPS = (("prometheus_client", "Histogram.labels(...).time()"),
                ("none", "@stage_timer, nothing configured"),
                ("info", "@stage_timer, INFO line + CPU seconds"))
STAGE_FORMS = ("sync decorator", "async decorator")


def _env() -> dict[str, str]:
    # A fixed hash seed: dict layouts, and so the counts, repeat exactly.
    path = f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    return {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": path}


def _collected(stderr: str) -> int:
    match = re.search(r"Collected\s*:\s*(\d+)", stderr)
    if match is None:
        raise RuntimeError(f"no callgrind total in valgrind's output:\n{stderr[-2000:]}")
    return int(match.group(1))


def inprocess(name: str, small: int, large: int) -> float:
    """Instructions per request of ``name`` driven in process."""
    totals = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (small, large):
            code = _INPROCESS.format(harness_dir=str(HARNESS.parent), plugin=str(PLUGIN),
                                     name=name, n=n)
            proc = subprocess.run(
                ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/cg.%p",
                 sys.executable, "-c", code],
                env=_env(), capture_output=True, text=True, timeout=1800, check=False)
            if proc.returncode != 0:
                raise RuntimeError(f"{name}: exit {proc.returncode}\n{proc.stderr[-2000:]}")
            totals.append(_collected(proc.stderr))
    return (totals[1] - totals[0]) / (large - small)


def _callgrind_total(code: str) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/cg.%p",
             sys.executable, "-c", code],
            env=_env(), capture_output=True, text=True, timeout=1800, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"exit {proc.returncode}\n{proc.stderr[-2000:]}")
        return _collected(proc.stderr)


def stage_call(setup: str, form: str, small: int, large: int) -> float:
    """Instructions per call of an empty stage timed by ``setup`` in ``form``."""
    totals = [_callgrind_total(_STAGES.format(setup=setup, form=form, n=n))
              for n in (small, large)]
    return (totals[1] - totals[0]) / (large - small)


def stages(small: int, large: int) -> None:
    """Print the stage timers' instructions per call, as multiples of prometheus-client's."""
    print("### Instructions per stage call (callgrind, PYTHONHASHSEED=0)\n")
    print("| form | timer | instructions / call | ÷ Histogram.time() |")
    print("|---|---|---:|---:|")
    for form in STAGE_FORMS:
        base = 0.0
        for setup, label in STAGE_SETUPS:
            print(f"  stages: {form}, {setup}", file=sys.stderr, flush=True)
            count = stage_call(setup, form, small, large)
            base = base or count
            print(f"| {form} | {label} | {count:,.0f} | {count / base:.2f}x |", flush=True)


async def _client(port: int, total: int, conns: int) -> None:
    async def one(n: int, first: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for i in range(n):
            path = ("/", f"/items/{i % 1000}", "/error")[(first + i) % 3]
            writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
        writer.close()
        await writer.wait_closed()

    await asyncio.gather(*(one(total // conns, c) for c in range(conns)))


def server(name: str, requests: int) -> float:
    """Instructions per request of ``name`` served by uvicorn over loopback."""
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        proc = subprocess.Popen(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}/cg.%p",
             sys.executable, str(HARNESS), "--serve", name, "--port", str(port),
             "--plugin", str(PLUGIN)],
            cwd=HARNESS.parent, env=_env(), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 300
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(
                            f"{name}: the server under valgrind did not start") from None
                    time.sleep(0.5)
            asyncio.run(_client(port, 300, 10))  # warm-up
            subprocess.run(["callgrind_control", "-z", str(proc.pid)], check=True,
                           capture_output=True, timeout=120)
            asyncio.run(_client(port, requests, 10))
            subprocess.run(["callgrind_control", "-d", str(proc.pid)], check=True,
                           capture_output=True, timeout=120)
            dumps = sorted(out.glob("cg.*.1"))
            if not dumps:
                raise RuntimeError(f"{name}: callgrind wrote no dump")
            text = dumps[0].read_text(errors="replace")
            match = re.search(r"^(?:summary|totals):\s*(\d+)", text, re.MULTILINE)
            if match is None:
                raise RuntimeError(f"{name}: no total in {dumps[0].name}")
            return int(match.group(1)) / requests
        finally:
            stop_process(proc, 60)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.instructions", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("entries", nargs="*", default=list(DEFAULT_ENTRIES),
                    help="harness entries (bare and manual_prometheus_client are always added)")
    ap.add_argument("--driver", choices=("inprocess", "server", "stages"), default="inprocess")
    ap.add_argument("--small", type=int, default=500,
                    help="inprocess: requests (stages: calls) of the short run")
    ap.add_argument("--large", type=int, default=3500,
                    help="inprocess: requests (stages: calls) of the long run; "
                         "server: requests counted")
    args = ap.parse_args(argv)
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    if not HARNESS.exists():
        print(f"the shared harness is not at {HARNESS}", file=sys.stderr)
        return 2
    if args.driver == "stages":
        stages(args.small, args.large)
        return 0
    names = list(dict.fromkeys(["bare", "manual_prometheus_client", *args.entries]))
    counts: dict[str, float] = {}
    for name in names:
        print(f"  {args.driver}: {name}", file=sys.stderr, flush=True)
        counts[name] = (inprocess(name, args.small, args.large) if args.driver == "inprocess"
                        else server(name, args.large))
    bare, manual = counts["bare"], counts["manual_prometheus_client"]
    print(f"### Instructions per request ({args.driver}, callgrind, PYTHONHASHSEED=0)\n")
    print("| entry | instructions / request | over bare | over bare ÷ hand-written |")
    print("|---|---:|---:|---:|")
    for name in names:
        over = counts[name] - bare
        ratio = f"{over / (manual - bare):.2f}x" if manual > bare else "-"
        print(f"| {name} | {counts[name]:,.0f} | {over:+,.0f} | {ratio} |")
    if "promkit_all" in counts and counts.get("peer_stack", bare) > bare:
        print(f"\npromkit_all over bare ÷ peer_stack over bare: "
              f"{(counts['promkit_all'] - bare) / (counts['peer_stack'] - bare):.3f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
