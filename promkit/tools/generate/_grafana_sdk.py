"""The one module that uses grafana-foundation-sdk (Grafana's typed dashboard builders).

The SDK is pre-1.0 and its API changes between releases, so promkit pins one
exact version (the ``dashboards`` extra: ``pip install 'promkit[dashboards]'``)
and keeps every call to it here: :func:`render` turns a
:class:`~._grafana_model.DashboardSpec` into dashboard JSON. When the SDK is
missing, :func:`render` raises :class:`DashboardsUnavailable` saying how to
install it.
"""

from __future__ import annotations

import json
from typing import Any

from promkit.tools.generate._grafana_model import DashboardSpec, PanelSpec, Placed, layout
from promkit.tools.generate.config import ConfigError

__all__ = ["SDK_REQUIREMENT", "DashboardsUnavailable", "render", "require_sdk", "sdk_available"]

SDK_REQUIREMENT = "grafana-foundation-sdk==1769699681!11.1.0"
"""The pinned SDK release (its builders target Grafana 11.1, the demo's Grafana)."""

SCHEMA_VERSION = 39
"""The dashboard schemaVersion of Grafana 11.1, which the pinned SDK writes."""


class DashboardsUnavailable(ConfigError):
    """grafana-foundation-sdk is not installed, so dashboards cannot be generated.

    A :class:`ConfigError`, so ``promkit generate`` reports it as one line (exit 2)
    after writing everything else.
    """

    def __init__(self, source: str) -> None:
        super().__init__(
            source, "",
            "Grafana dashboards not generated: they need grafana-foundation-sdk "
            f"(Python >= 3.11); pip install 'promkit[dashboards]' (pins {SDK_REQUIREMENT})")


def sdk_available() -> bool:
    try:
        import grafana_foundation_sdk  # noqa: F401
    except ImportError:
        return False
    return True


def require_sdk(source: str = "<config>") -> None:
    """Raise :class:`DashboardsUnavailable` unless the SDK can be imported."""
    if not sdk_available():
        raise DashboardsUnavailable(source)


def render(spec: DashboardSpec, datasource_uid: str, default_service: str) -> dict[str, Any]:
    """The dashboard JSON (as plain data) for ``spec``; panels query ``datasource_uid``."""
    require_sdk()
    from grafana_foundation_sdk.builders import dashboard as db
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models import dashboard as dm

    ds = dm.DataSourceRef(type_val="prometheus", uid=datasource_uid)
    enums: Any = dm  # the SDK's StrEnums are typed for Python 3.11; mypy runs as 3.10
    board = (
        db.Dashboard(spec.title)
        .uid(spec.uid)
        .description(spec.description)
        .tags(list(spec.tags))
        .refresh("30s")
        .time("now-1h", "now")
        .timezone("browser")
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .link(db.DashboardLink("promkit dashboards").type(enums.DashboardLinkType.DASHBOARDS)
              .tags(["promkit"]).as_dropdown(True).include_vars(True).keep_time(True))
    )
    for var in spec.variables:
        variable = (
            db.QueryVariable(var.name).label(var.label).datasource(ds)
            .query({"query": var.query, "refId": "PromkitVariable"})
            .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(dm.VariableSort.ALPHABETICAL_ASC)
            .multi(var.multi).include_all(var.multi)
        )
        if var.multi:
            variable = variable.all_value(".*")
        if var.default is not None:
            variable = variable.current(dm.VariableOption(selected=True, text=var.default,
                                                          value=var.default))
        elif var.multi:
            variable = variable.current(dm.VariableOption(selected=True, text=["All"],
                                                          value=["$__all"]))
        board = board.with_variable(variable)
    for name, expr in spec.annotations:
        board = board.annotation(db.AnnotationQuery().name(name).datasource(ds).enable(True)
                                 .icon_color("red").expr(expr))
    built = board.build()
    built.schema_version = SCHEMA_VERSION
    panels: list[Any] = []
    for item in layout(spec):
        pos = dm.GridPos(h=item.h, w=item.w, x=item.x, y=item.y)
        if item.row is not None:
            panels.append(db.Row(item.row.title).id(item.id).grid_pos(pos).build())
        else:
            panels.append(_panel(item, pos, ds).build())
    built.panels = panels
    data: dict[str, Any] = json.loads(JSONEncoder(sort_keys=True).encode(built))
    # Grafana uses the variable's text as the query (the SDK nests it in an object for
    # the newer Prometheus variable editor); keep both readable by old and new Grafana.
    for var in data.get("templating", {}).get("list", []):
        if isinstance(var.get("query"), dict):
            var["definition"] = var["query"]["query"]
    return data


def _panel(item: Placed, pos: Any, ds: Any) -> Any:
    from grafana_foundation_sdk.builders import (
        bargauge,
        common,
        gauge,
        prometheus,
        stat,
        table,
        timeseries,
    )
    from grafana_foundation_sdk.builders import dashboard as db
    from grafana_foundation_sdk.models import common as sdk_common
    from grafana_foundation_sdk.models import dashboard as dm
    from grafana_foundation_sdk.models import prometheus as pm

    # The SDK's StrEnums are typed for Python 3.11 (its minimum); mypy checks as 3.10.
    cm: Any = sdk_common
    enums: Any = dm

    spec: PanelSpec | None = item.panel
    assert spec is not None
    targets = []
    for i, target in enumerate(spec.targets):
        query = (prometheus.Dataquery().ref_id(chr(ord("A") + i)).datasource(ds)
                 .expr(target.expr).legend_format(target.legend or "__auto"))
        query = query.instant() if target.instant else query.range()
        if target.exemplar:
            query = query.exemplar(True)
        if target.table:
            query = query.format(pm.PromQueryFormat.TABLE)
        targets.append(query)
    builder: Any
    if spec.kind == "timeseries":
        builder = (timeseries.Panel().fill_opacity(25 if spec.stacked else 10)
                   .legend(common.VizLegendOptions().display_mode(cm.LegendDisplayMode.LIST)
                           .placement(cm.LegendPlacement.BOTTOM).show_legend(True)))
        if spec.stacked:
            builder = builder.stacking(common.StackingConfig().mode(cm.StackingMode.NORMAL))
    elif spec.kind == "stat":
        builder = (stat.Panel().graph_mode(cm.BigValueGraphMode.NONE)
                   .color_mode(cm.BigValueColorMode.VALUE)
                   .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"])))
    elif spec.kind == "gauge":
        builder = gauge.Panel().reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]))
    elif spec.kind == "bargauge":
        builder = (bargauge.Panel().orientation(cm.VizOrientation.HORIZONTAL)
                   .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"])))
    else:
        builder = table.Panel()
    builder = (builder.id(item.id).title(spec.title).description(spec.description)
               .unit(spec.unit).datasource(ds).grid_pos(pos).targets(targets))
    if spec.min is not None:
        builder = builder.min(spec.min)
    if spec.max is not None:
        builder = builder.max(spec.max)
    if spec.decimals is not None:
        builder = builder.decimals(spec.decimals)
    if spec.time_from is not None:
        builder = builder.time_from(spec.time_from)
    steps = [dm.Threshold(value=None, color=spec.base_color)]
    steps += [dm.Threshold(value=value, color=color) for value, color in spec.thresholds]
    builder = builder.thresholds(db.ThresholdsConfig().mode(enums.ThresholdsMode.ABSOLUTE)
                                 .steps(steps))
    return builder
