"""The project config the generators read: service, scrape targets, thresholds, SLOs, receivers.

A config is YAML (``promkit.yaml``) or a Python file exposing ``CONFIG`` (a
mapping shaped like the YAML, or a :class:`Config`). :func:`load_config` parses
and validates it; every problem raises :class:`ConfigError` naming the file,
the field path (``slos[1].threshold_seconds``), the line when the file is YAML,
and what is wrong.

The dataclasses are frozen; field names are the YAML keys (``continue`` is
``Route.continue_``).
"""

from __future__ import annotations

import runpy
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from promkit.tools.generate._config_model import (
    COMPAT_PEERS,
    OLDEST_ALERTMANAGER,
    RECEIVER_TYPES,
    SLO_TYPES,
    AlertmanagerTargets,
    Budgets,
    CompatRules,
    Config,
    ConfigError,
    Receiver,
    Route,
    ScrapeTarget,
    SLOSpec,
    Thresholds,
)
from promkit.tools.generate._config_reader import config_from_mapping
from promkit.tools.generate._durations import format_duration, parse_duration

__all__ = [
    "COMPAT_PEERS",
    "DEFAULT_CONFIG_PATH",
    "OLDEST_ALERTMANAGER",
    "RECEIVER_TYPES",
    "SLO_TYPES",
    "AlertmanagerTargets",
    "Budgets",
    "CompatRules",
    "Config",
    "ConfigError",
    "Receiver",
    "Route",
    "SLOSpec",
    "ScrapeTarget",
    "Thresholds",
    "config_from_mapping",
    "format_duration",
    "load_config",
    "parse_duration",
]

DEFAULT_CONFIG_PATH = Path("promkit.yaml")
"""The default config of ``promkit generate``: ``promkit.yaml`` in the current directory
(``promkit init`` writes a starting one)."""


def load_config(path: str | Path) -> Config:
    """Read and validate a YAML (``.yaml``/``.yml``) or Python (``.py``, ``CONFIG``) config."""
    path = Path(path)
    source = str(path)
    if path.suffix == ".py":
        try:
            namespace = runpy.run_path(str(path))
        except FileNotFoundError:
            raise ConfigError(source, "", "file not found") from None
        except Exception as exc:  # the user's code: report, don't crash
            raise ConfigError(source, "", f"running the file failed: {exc!r}") from None
        if "CONFIG" not in namespace:
            raise ConfigError(source, "", "a Python config must define CONFIG "
                              "(a mapping like the YAML config, or a Config)")
        value = namespace["CONFIG"]
        if isinstance(value, Config):
            return config_from_mapping(_config_to_mapping(value), source=source)
        return config_from_mapping(value, source=source)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(source, "", "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, "", f"cannot read: {exc}") from None
    return config_from_yaml(text, source=source)


def config_from_yaml(text: str, *, source: str = "<config>") -> Config:
    import yaml

    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        raise ConfigError(source, "", f"YAML syntax error: {problem}", line=line) from None
    except yaml.YAMLError as exc:
        raise ConfigError(source, "", f"YAML error: {exc}") from None
    lines: dict[str, int] = {}
    if node is not None:
        _node_lines(node, "", lines)
    return config_from_mapping(data, source=source, lines=lines)


def _node_lines(node: Any, path: str, out: dict[str, int]) -> None:
    import yaml

    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            name = f"{path}.{key.value}" if path else str(key.value)
            out.setdefault(name, key.start_mark.line + 1)
            _node_lines(value, name, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _node_lines(item, f"{path}[{i}]", out)


def _config_to_mapping(config: Config) -> dict[str, Any]:
    """A Config as plain data (for re-validation of Python configs)."""

    def plain(value: Any) -> Any:
        if hasattr(value, "__dataclass_fields__"):
            out = {}
            for f in fields(value):
                if f.name == "source":
                    continue
                item = getattr(value, f.name)
                if item is None:
                    continue
                out["continue" if f.name == "continue_" else f.name] = plain(item)
            return out
        if isinstance(value, Mapping):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    result: dict[str, Any] = plain(config)
    return result
