"""``promkit init``: a commented starting ``promkit.yaml`` that validates as it is."""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path
from string import Template

from promkit.tools.generate.config import config_from_yaml

__all__ = ["default_service_name", "starter_config", "write_starter_config"]

_NOT_IN_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


def default_service_name(directory: Path) -> str:
    """A service name from a directory's name (``My App`` -> ``My-App``), else ``app``."""
    name = _NOT_IN_NAME.sub("-", directory.resolve().name).lstrip("-_.")
    return name or "app"


def starter_config(service: str) -> str:
    """The starting config's text for ``service``; ConfigError if the name is not valid."""
    template = files("promkit.tools").joinpath("starter.yaml").read_text(encoding="utf-8")
    text = Template(template).substitute(service=service)
    config_from_yaml(text, source="promkit.yaml")  # the starter must validate as written
    return text


def write_starter_config(path: Path, service: str) -> None:
    """Write :func:`starter_config` to ``path``; FileExistsError if it is there already."""
    text = starter_config(service)
    with open(path, "x", encoding="utf-8") as handle:
        handle.write(text)
