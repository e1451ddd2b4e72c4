"""The SLO dashboard: SLI against objective, error budget, burn rates against thresholds."""

from __future__ import annotations

from promkit.tools.generate._burn import BURN_WINDOWS, burn_factor
from promkit.tools.generate._durations import format_duration, parse_duration
from promkit.tools.generate._grafana_kit import FIRING, SVC, sel, target, variables
from promkit.tools.generate._grafana_model import DashboardSpec, PanelSpec, RowSpec, TargetSpec
from promkit.tools.generate._promql import num
from promkit.tools.generate.config import Config

__all__ = ["slos_dashboard"]


def slos_dashboard(config: Config) -> DashboardSpec:
    by_window: dict[str, list[str]] = {}
    for slo in config.slos:
        by_window.setdefault(format_duration(parse_duration(slo.window)), []).append(slo.name)
    sli_targets = []
    for window, names in by_window.items():
        which = 'slo=~"' + "|".join(names) + '"'
        sli_targets.append(target(f"1 - {sel(f'slo:sli_error:ratio_rate{window}', which)}",
                                  f"{{{{slo}}}} SLI ({window})"))
    sli_targets.append(target(sel("slo:objective:ratio"), "{{slo}} objective"))
    objectives = ", ".join(f"{s.name} {s.objective * 100:g}% over {s.window}"
                           for s in config.slos)

    def burn(severity: str) -> tuple[tuple[TargetSpec, ...], str]:
        """Burn rate over each window divided by its alert's factor: 1 is the threshold."""
        targets: list[TargetSpec] = []
        factors: list[str] = []
        for window, names in by_window.items():
            which = 'slo=~"' + "|".join(names) + '"'
            said: list[str] = []
            for b in (b for b in BURN_WINDOWS if b.alert == severity):
                factor = num(burn_factor(window, b))
                said.append(f"{factor} for {b.long} & {b.short}")
                for w in (b.long, b.short):
                    targets.append(target(
                        f"{sel(f'slo:sli_error:ratio_rate{w}', which)}\n/ on (service, slo)\n"
                        f"(1 - {sel('slo:objective:ratio', which)})\n/ {factor}",
                        f"{{{{slo}}}} {w}"))
            factors.append(f"{window} SLOs: {', '.join(said)}")
        return tuple(targets), "; ".join(factors)

    page, page_factors = burn("SLOBurnRatePage")
    ticket, ticket_factors = burn("SLOBurnRateTicket")
    explain = ("Burn rate (error ratio over the error budget, 1 - objective) over each window, "
               "divided by the factor of its alert (share of the budget x SLO window / long "
               "window, the SRE workbook's table scaled to the SLO's window): ")
    row = RowSpec("Objectives and budgets", (
        PanelSpec("sli-vs-objective", "SLI vs objective",
                  "Each SLO's indicator (good events over all) over its own window "
                  "(1 - slo:sli_error:ratio_rate<window>) against its objective "
                  f"(slo:objective:ratio). Objectives: {objectives}.", "percentunit",
                  tuple(sli_targets), width=12, max=1),
        PanelSpec("error-budget", "Error budget remaining",
                  "Share of each SLO's error budget left over its window "
                  "(slo:error_budget_remaining:ratio); below 0 the objective is missed.",
                  "percentunit",
                  (target(sel("slo:error_budget_remaining:ratio"), "{{slo}}", instant=True),),
                  kind="stat", width=12, decimals=1, base_color="red",
                  thresholds=((0.25, "orange"), (0.5, "green"))),
        PanelSpec("burn-rate-page", "Page burn rate vs threshold (1h & 5m, 6h & 30m)",
                  explain + f"{page_factors}. The page fires when both windows of a pair "
                  "are above 1 (2% of the budget in 1h, or 5% in 6h).", "suffix: x",
                  page, width=12, min=0, thresholds=((0.5, "orange"), (1, "red"))),
        PanelSpec("burn-rate-ticket", "Ticket burn rate vs threshold (1d & 2h, 3d & 6h)",
                  explain + f"{ticket_factors}. The ticket fires when both windows of a "
                  "pair are above 1 (10% of the budget in 1d, or 10% in 3d).", "suffix: x",
                  ticket, width=12, min=0, thresholds=((0.5, "orange"), (1, "red"))),
        PanelSpec("sli-events", "SLI events per second",
                  "Events each SLO counts per second over 5 minutes "
                  "(slo:sli_events:rate5m) and the bad ones (slo:sli_errors:rate5m); below "
                  f"{config.slo_min_events_per_hour:g} events per hour no burn-rate alert "
                  "fires. No line at all: the SLO's metric is absent.", "cps",
                  (target(sel("slo:sli_events:rate5m"), "{{slo}} events"),
                   target(sel("slo:sli_errors:rate5m"), "{{slo}} bad")),
                  width=12, min=0),
        PanelSpec("slo-alerts", "SLO alerts firing or pending",
                  "Burn-rate and absent-metric alerts of the SLOs now pending or firing "
                  "(Prometheus's ALERTS series; the SLI type is in sli).", "short",
                  (target(f"ALERTS{{{SVC}, slo!=\"\"}}", "{{alertname}} {{slo}} {{alertstate}}",
                          instant=True, table=True),),
                  kind="table", width=12),
    ))
    return DashboardSpec(
        "promkit-slos", "slos.json", "promkit / SLOs",
        "Service level objectives from the project config: SLI against objective, error "
        "budget remaining, multiwindow burn rates, firing SLO alerts.",
        variables(config, "service"), (row,), annotations=(FIRING,))
