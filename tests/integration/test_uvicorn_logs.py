"""uvicorn's own lines as promkit's JSON lines, one line per request (real uvicorn).

The server runs with uvicorn's access log on (its default) at INFO; stdout and
stderr both go to the log file read here. Every line must be a JSON object with
the schema's leading keys, uvicorn's start-up and shutdown lines among them, and
exactly one line per request: promkit's ``http_request``, not uvicorn's access line.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from promkit import uvicorn_log_config

pytestmark = pytest.mark.integration

REQUESTS = 5


def _lines(server: Any) -> list[dict[str, Any]]:
    server.stop()  # uvicorn logs its shutdown lines before it exits
    text = server.process.log_path.read_text("utf-8")
    events = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            pytest.fail(f"not a JSON line: {line!r}\n--- whole output ---\n{text}")
        assert list(event)[:4] == ["timestamp", "level", "service", "event"], line
        events.append(event)
    return events


def _check(events: list[dict[str, Any]], service: str) -> None:
    assert {e["service"] for e in events} == {service}
    uvicorn = [e["event"] for e in events if e.get("extra", {}).get("logger") == "uvicorn.error"]
    assert "Application startup complete." in uvicorn
    assert any(text.startswith("Uvicorn running on") for text in uvicorn)
    assert any(text.startswith("Finished server process") for text in uvicorn)
    pings = [e for e in events if e.get("http_path") == "/ping"]
    assert len(pings) == REQUESTS and all(e["event"] == "http_request" for e in pings)
    # uvicorn's access line would name the raw request line; it is off.
    assert not [e for e in events if "GET /ping" in e["event"]]
    assert [e["event"] for e in events if e.get("extra", {}).get("logger") == "app"] == [
        "something odd"]


def _traffic(server: Any) -> None:
    for _ in range(REQUESTS):
        assert server.get("/ping").status_code == 200
    assert server.get("/warn").status_code == 200


def test_plain_uvicorn_with_an_app_that_calls_configure_logging(
        uvicorn_app: Callable[..., Any]) -> None:
    server = uvicorn_app("uvicorn_logs_app:app", env={"APP_CONFIGURES_LOGGING": "1"},
                         extra_args=["--access-log", "--log-level", "info"])
    _traffic(server)
    _check(_lines(server), "uvicorn-logs")


def test_uvicorn_log_config_file(uvicorn_app: Callable[..., Any], tmp_path: Path) -> None:
    config = tmp_path / "log-config.json"
    config.write_text(json.dumps(uvicorn_log_config("from-config")))
    server = uvicorn_app("uvicorn_logs_app:app",
                         extra_args=["--access-log", "--log-level", "info",
                                     "--log-config", str(config)])
    _traffic(server)
    _check(_lines(server), "from-config")
