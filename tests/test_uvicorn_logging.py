"""uvicorn's loggers through promkit's JSON lines (in-process; tests/integration runs uvicorn)."""

from __future__ import annotations

import json
import logging
import logging.config
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn.config
from _log_helpers import ListSink  # tests/ is on sys.path

from promkit import uvicorn_log_config
from promkit.instrument import logs
from promkit.instrument._log_state import current
from promkit.instrument.uvicorn_logging import UVICORN_LOGGERS


@pytest.fixture
def uvicorn_configured() -> Iterator[None]:
    """uvicorn's default log config applied, as ``uvicorn app:app`` does before the import;
    every logger it touches put back afterwards."""
    names = ("", *UVICORN_LOGGERS)
    saved = {n: (list(logging.getLogger(n).handlers), logging.getLogger(n).propagate,
                 logging.getLogger(n).level) for n in names}
    logging.config.dictConfig(uvicorn.config.LOGGING_CONFIG)
    try:
        yield
    finally:
        logs.reset_logging()
        for name, (handlers, propagate, level) in saved.items():
            logger = logging.getLogger(name)
            logger.handlers[:] = handlers
            logger.propagate = propagate
            logger.setLevel(level)


def _access() -> None:
    logging.getLogger("uvicorn.access").info('%s - "%s %s HTTP/%s" %d', "203.0.113.9:51000",
                                             "GET", "/ping", "1.1", 200)


def test_configure_logging_routes_uvicorn_and_turns_its_access_log_off(
        uvicorn_configured: None) -> None:
    sink = ListSink()
    before = {n: list(logging.getLogger(n).handlers) for n in UVICORN_LOGGERS}
    assert before["uvicorn"] and before["uvicorn.access"]  # uvicorn's own
    logs.configure_logging("api", stream=sink)
    logging.getLogger("uvicorn.error").info("Started server process [%d]", 42)
    _access()
    (line,) = sink.lines
    assert json.loads(line) == {"timestamp": json.loads(line)["timestamp"], "level": "info",
                                "service": "api", "event": "Started server process [42]",
                                "extra": {"logger": "uvicorn.error"}}
    # uvicorn reads "no handler" as access log off and skips the line's work.
    assert not logging.getLogger("uvicorn.access").hasHandlers()
    logs.reset_logging()  # gives uvicorn's loggers back what they had
    assert {n: logging.getLogger(n).handlers for n in UVICORN_LOGGERS} == before
    assert logging.getLogger("uvicorn").propagate is False


def test_uvicorn_access_log_on_comes_out_as_json_with_the_ip_redacted(
        uvicorn_configured: None) -> None:
    sink = ListSink()
    logs.configure_logging("api", stream=sink, uvicorn_access_log=True)
    _access()
    (line,) = sink.lines
    event = json.loads(line)
    assert event["extra"] == {"logger": "uvicorn.access"}
    assert "GET /ping HTTP/1.1" in event["event"] and "203.0.113.9" not in line


def test_uvicorn_loggers_false_leaves_them_alone(uvicorn_configured: None) -> None:
    before = list(logging.getLogger("uvicorn").handlers)
    logs.configure_logging("api", stream=ListSink(), uvicorn_loggers=False)
    assert logging.getLogger("uvicorn").handlers == before
    assert logging.getLogger("uvicorn.access").hasHandlers()


def test_uvicorn_log_config_is_json_and_sets_everything_up(
        uvicorn_configured: None, capsys: Any) -> None:
    config = json.loads(json.dumps(uvicorn_log_config("api", level="WARNING",
                                                      stream="ext://sys.stderr")))
    logging.config.dictConfig(config)
    logging.getLogger("uvicorn.error").warning("Invalid HTTP request received.")
    logging.getLogger("uvicorn.error").info("below the level")
    _access()
    lines = capsys.readouterr().err.splitlines()
    assert [json.loads(line)["event"] for line in lines] == ["Invalid HTTP request received."]
    assert json.loads(lines[0])["service"] == "api"
    assert logging.getLogger().handlers == [current.state.handler]  # one handler, promkit's
