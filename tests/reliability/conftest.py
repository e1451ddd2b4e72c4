"""Reliability and security suite: fuzz, cardinality attack, faults, soak, PII, security.

Every test here is marked ``reliability`` (tests with real servers also
``integration``). ``make test`` runs the small sizes; ``make reliability``
sets ``PROMKIT_RELIABILITY=full`` for the big ones and collects the figures
each test records (:func:`record`) into the table printed by
``tests/reliability/report.py`` and written to ``docs/reliability.md``.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

# The integration fixtures (real Prometheus, Alertmanager, Redis, app servers).
from integration._servers import find_binary
from integration.conftest import (  # noqa: F401 - fixtures, used by name
    _stack,
    alertmanager,
    debug_redis,
    gunicorn_app,
    multiproc_dir,
    prometheus,
    redis_server,
    uvicorn_app,
)

FULL = os.environ.get("PROMKIT_RELIABILITY", "").lower() == "full"
"""``make reliability``: the big sizes. Otherwise the small ones ``make test`` runs."""

FIGURES_ENV = "PROMKIT_RELIABILITY_FIGURES"
_HERE = Path(__file__).resolve().parent
_FIGURES: dict[str, dict[str, Any]] = {}


def size(small: int, full: int) -> int:
    """``full`` under ``make reliability``, else ``small``."""
    return full if FULL else small


def record(section: str, **figures: Any) -> None:
    """Add figures to the table (``make reliability`` writes them out)."""
    _FIGURES.setdefault(section, {}).update(figures)


def add(section: str, key: str, amount: float) -> None:
    """Add ``amount`` to a summed figure (e.g. cases tried across tests)."""
    current = _FIGURES.setdefault(section, {})
    current[key] = current.get(key, 0) + amount


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "reliability: the reliability and security suite (tests/reliability)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.reliability)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    path = os.environ.get(FIGURES_ENV)
    if path and _FIGURES:
        Path(path).write_text(json.dumps({"full": FULL, "figures": _FIGURES}, indent=2))


# ------------------------------------------------------------------------------ helpers

def rss_after_gc() -> int:
    """This process's resident set size in bytes, after a full collection."""
    gc.collect()
    gc.collect()
    return int(psutil.Process().memory_info().rss)


def wait_for(check: Callable[[], Any], timeout: float, interval: float = 0.02,
             what: str = "condition") -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


_FAMILY_LINE = re.compile(r"^# (HELP|TYPE|UNIT) (\S+)(.*)$", re.DOTALL)
_SAMPLE_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(.*)$", re.DOTALL)


def prefix_exposition(text: str, prefix: str) -> str:
    """A text exposition with every metric name prefixed (so many can share one file)."""
    out = []
    for line in text.split("\n"):  # not splitlines(): values may hold \r, \x1c...
        if not line:
            continue
        match = _FAMILY_LINE.match(line)
        if match:
            out.append(f"# {match.group(1)} {prefix}{match.group(2)}{match.group(3)}")
            continue
        match = _SAMPLE_LINE.match(line)
        assert match, f"not a metric line: {line!r}"
        out.append(prefix + line)
    return "\n".join(out) + "\n"


def promtool_check(expositions: Iterable[str], *, allowed_lints: tuple[str, ...] = (),
                   batch: int = 2000) -> dict[str, int]:
    """Run ``promtool check metrics`` over many expositions, ``batch`` per call.

    Each exposition gets its own name prefix, so one call checks thousands.
    Fails on any parse error and on lint messages not in ``allowed_lints``;
    returns ``{"expositions": n, "calls": c, "allowed_lints": k}``.
    """
    binary = find_binary("promtool")
    if binary is None:
        pytest.skip("promtool is not installed (Debian package 'prometheus')")
    items = list(expositions)
    calls = lints = 0
    for start in range(0, len(items), batch):
        chunk = items[start:start + batch]
        text = "".join(prefix_exposition(e, f"x{start + i}_") for i, e in enumerate(chunk))
        proc = subprocess.run([binary, "check", "metrics"], input=text.encode("utf-8"),
                              capture_output=True, timeout=120, check=False)
        calls += 1
        output = (proc.stdout + proc.stderr).decode("utf-8", "replace")
        problems = [line for line in output.splitlines() if line.strip()]
        unexpected = [p for p in problems if not any(a in p for a in allowed_lints)]
        assert proc.returncode in (0, 3) and not unexpected, (
            f"promtool check metrics (rc={proc.returncode}) on expositions "
            f"{start}..{start + len(chunk) - 1}:\n" + "\n".join(unexpected[:20]))
        lints += len(problems) - len(unexpected)
    return {"expositions": len(items), "calls": calls, "allowed_lints": lints}




@pytest.fixture
def clean_logging() -> Iterator[None]:
    """Undo configure_logging after the test."""
    from promkit.instrument.logs import reset_logging

    try:
        yield
    finally:
        reset_logging()


class Response:
    """What an in-process ASGI call answered."""

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name: bytes) -> list[bytes]:
        return [v for k, v in self.headers if k.lower() == name]


async def asgi_call(app: Any, path: str = "/", *, method: str = "GET",
                    headers: Iterable[tuple[bytes, bytes]] = (), query: bytes = b"",
                    body: bytes = b"", raw_path: bytes | None = None) -> Response:
    """One HTTP request through an ASGI app in this process (no network)."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path,
        "raw_path": raw_path if raw_path is not None else path.encode("utf-8", "surrogatepass"),
        "query_string": query, "root_path": "", "headers": list(headers),
        "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8000),
    }
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    status = 0
    out_headers: list[tuple[bytes, bytes]] = []
    chunks: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, out_headers
        if message["type"] == "http.response.start":
            status = message["status"]
            out_headers = list(message.get("headers", ()))
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return Response(status, out_headers, b"".join(chunks))


@contextlib.contextmanager
def no_pytest_log_capture() -> Iterator[None]:
    """Take pytest's log-capture handlers off the root logger inside a test body.

    They keep every record in memory (an RSS measurement would measure them) and,
    being extra root handlers, make promkit's access log leave its fast path.
    pytest adds them around the call phase, so a fixture cannot do this.
    """
    import logging

    from promkit.instrument._log_config import JsonLinesHandler

    root = logging.getLogger()
    removed = [h for h in root.handlers if not isinstance(h, JsonLinesHandler)]
    for handler in removed:
        root.removeHandler(handler)
    try:
        yield
    finally:
        for handler in removed:
            root.addHandler(handler)
