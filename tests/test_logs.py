"""promkit.instrument.logs, the public logging module: every public name is importable from it."""

import importlib

from promkit.instrument import logs


def test_every_public_name_is_importable_from_logs_and_is_its_homes_object():
    # The code lives in private modules (_log_config, _log_processors, _access_line...);
    # users keep importing configure_logging, the processors etc. from here.
    for name in logs.__all__:
        value = getattr(logs, name)
        home = getattr(value, "__module__", None)
        if home is not None and home.startswith("promkit.instrument._"):
            assert getattr(importlib.import_module(home), name) is value, name
    assert len(logs.__all__) == len(set(logs.__all__))


def test_the_documented_entry_points_are_there():
    for name in ("configure_logging", "json_lines_handler", "reset_logging", "get_logger",
                 "processors", "redact_pii", "access_logger", "library_logger", "log_output"):
        assert callable(getattr(logs, name)), name
