"""The dashboards as plain data: what a panel shows, independent of any Grafana library.

:mod:`._grafana_panels` declares dashboards with these dataclasses;
:mod:`._grafana_sdk` turns them into Grafana dashboard JSON. Keeping the
declarations free of the builder library means a change of its API touches
one module, and the tests can read the declarations directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "GRID_COLUMNS",
    "DashboardSpec",
    "PanelKind",
    "PanelSpec",
    "RowSpec",
    "TargetSpec",
    "VariableSpec",
    "layout",
]

GRID_COLUMNS = 24
"""Grafana's grid is 24 columns wide."""

PanelKind = Literal["timeseries", "stat", "table", "bargauge", "gauge"]


@dataclass(frozen=True)
class TargetSpec:
    """One PromQL query of a panel.

    ``legend`` is Grafana's legend format (``{{http_route}}``); ``instant``
    asks for one value per series (stat, table, bar gauge); ``exemplar``
    asks Grafana to fetch exemplars for the series the query selects.
    """

    expr: str
    legend: str = ""
    instant: bool = False
    exemplar: bool = False
    table: bool = False


@dataclass(frozen=True)
class PanelSpec:
    """One panel. ``key`` is a stable name (alert links and tests use it)."""

    key: str
    title: str
    description: str
    unit: str
    targets: tuple[TargetSpec, ...]
    kind: PanelKind = "timeseries"
    width: int = 12
    height: int = 8
    stacked: bool = False
    min: float | None = None
    max: float | None = None
    thresholds: tuple[tuple[float, str], ...] = ()
    """Steps above the base: ``(value, color)``, in increasing order."""
    base_color: str = "green"
    time_from: str | None = None
    """A panel-relative time range (``now/M`` = this month so far)."""
    decimals: int | None = None


@dataclass(frozen=True)
class RowSpec:
    title: str
    panels: tuple[PanelSpec, ...]


@dataclass(frozen=True)
class VariableSpec:
    """A query template variable (``label_values(...)``)."""

    name: str
    label: str
    query: str
    multi: bool = False
    default: str | None = None
    """The selected value; ``None`` selects All for a multi-value variable."""


@dataclass(frozen=True)
class DashboardSpec:
    uid: str
    file: str
    title: str
    description: str
    variables: tuple[VariableSpec, ...]
    rows: tuple[RowSpec, ...]
    tags: tuple[str, ...] = ("promkit",)
    annotations: tuple[tuple[str, str], ...] = field(default=())
    """Annotation queries: ``(name, PromQL)``; each series' samples mark the time axis."""

    def panels(self) -> list[PanelSpec]:
        return [panel for row in self.rows for panel in row.panels]


@dataclass(frozen=True)
class Placed:
    """A row or panel with its id and grid position."""

    id: int
    x: int
    y: int
    w: int
    h: int
    row: RowSpec | None = None
    panel: PanelSpec | None = None


def layout(spec: DashboardSpec) -> list[Placed]:
    """Ids (from 1, in order) and grid positions: each row a full-width bar, its
    panels left to right, wrapping at 24 columns; a wrapped line starts below
    the tallest panel of the line before."""
    placed: list[Placed] = []
    next_id = 1
    y = 0
    for row in spec.rows:
        placed.append(Placed(next_id, 0, y, GRID_COLUMNS, 1, row=row))
        next_id += 1
        y += 1
        x = 0
        line_height = 0
        for panel in row.panels:
            if not 0 < panel.width <= GRID_COLUMNS:
                raise ValueError(f"panel {panel.key!r}: width {panel.width} is not 1..24")
            if x + panel.width > GRID_COLUMNS:
                y += line_height
                x = 0
                line_height = 0
            placed.append(Placed(next_id, x, y, panel.width, panel.height, panel=panel))
            next_id += 1
            x += panel.width
            line_height = max(line_height, panel.height)
        y += line_height
    return placed
