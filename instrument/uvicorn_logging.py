"""uvicorn's own log lines as promkit's JSON lines, and one line per request.

uvicorn's default log config gives its loggers handlers of their own: ``uvicorn``
(with ``uvicorn.error`` below it) writes coloured text to stderr and
``uvicorn.access`` one text line per request to stdout, neither propagating to
the root logger where :func:`~promkit.instrument.logs.configure_logging` puts
its handler. Two ways to have them come out as promkit's JSON lines:

- :func:`configure_logging` does it (``uvicorn_loggers=True``, the default) when
  it runs after uvicorn configured its logging: the usual ``uvicorn app:app``
  where the app module calls it at import. It calls :func:`route_uvicorn_loggers`.
- :func:`uvicorn_log_config` returns a ``logging.config.dictConfig`` mapping for
  ``uvicorn.run(app, log_config=...)`` or, written to a JSON file,
  ``uvicorn --log-config FILE``: it sets up promkit's logging itself (through
  :func:`~promkit.instrument.logs.json_lines_handler`) before uvicorn logs anything, also in the
  ``--workers`` supervisor and ``--reload`` processes, which never import the app.

Either way uvicorn's access log is off unless asked for: the middleware's
``http_request`` line already says what it said (method, route, status,
latency), so a request is logged once.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = [
    "UVICORN_LOGGERS",
    "restore_uvicorn_loggers",
    "route_uvicorn_loggers",
    "uvicorn_log_config",
]

UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")
"""The loggers uvicorn writes to (``uvicorn.error`` is its own lines, not only errors)."""

# What route_uvicorn_loggers changed, to put back on restore: name -> (handlers, propagate).
_saved: dict[str, tuple[list[logging.Handler], bool]] = {}


def route_uvicorn_loggers(*, access_log: bool = False) -> None:
    """Send uvicorn's records to the root logger's handlers (promkit's JSON lines).

    ``uvicorn`` and ``uvicorn.error`` lose the handlers uvicorn's log config gave
    them and propagate. ``uvicorn.access`` propagates too with ``access_log``;
    otherwise it has no handler and does not propagate, which uvicorn reads as
    "access log off" (it then does not even format the line). Levels stay as
    uvicorn set them (``--log-level``). :func:`restore_uvicorn_loggers` undoes it.
    """
    for name in UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        _saved.setdefault(name, (list(logger.handlers), logger.propagate))
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.propagate = access_log if name == "uvicorn.access" else True


def restore_uvicorn_loggers() -> None:
    """Give uvicorn's loggers back the handlers and propagation they had before routing."""
    for name, (handlers, propagate) in _saved.items():
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        for handler in handlers:
            logger.addHandler(handler)
        logger.propagate = propagate
    _saved.clear()


def uvicorn_log_config(service: str, *, level: str = "INFO", access_log: bool = False,
                       **options: Any) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` mapping for uvicorn: promkit's JSON lines for
    everything, uvicorn's own lines included, uvicorn's access log off.

    ``uvicorn.run(app, log_config=uvicorn_log_config("api"))``, or for the
    command line write it as JSON and pass ``--log-config``::

        python -c 'import json, promkit; print(json.dumps(promkit.uvicorn_log_config("api")))' \\
            > log-config.json
        uvicorn app:app --log-config log-config.json

    ``level`` is the root logger's and uvicorn's (``--log-level`` still
    overrides uvicorn's); ``access_log=True`` keeps uvicorn's access line (as
    JSON, its text in ``event``), for apps without promkit's middleware.
    ``options`` go to :func:`configure_logging` (see
    :func:`~promkit.instrument.logs.json_lines_handler`).
    The mapping holds only plain values, so it serialises to JSON as is.
    """
    return {
        "version": 1,
        # Loggers created before (promkit's own, the app's) must keep working.
        "disable_existing_loggers": False,
        # uvicorn writes use_colors into these two when --use-colors/--no-use-colors is
        # given; nothing uses them.
        "formatters": {"default": {"format": "%(message)s"},
                       "access": {"format": "%(message)s"}},
        "handlers": {"promkit": {"()": "promkit.instrument.logs.json_lines_handler",
                                 "service": service, **options}},
        "loggers": {
            "uvicorn": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.error": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.access": {"handlers": [], "level": level, "propagate": access_log},
        },
        "root": {"handlers": ["promkit"], "level": level},
    }
