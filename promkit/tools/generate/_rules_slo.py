"""SLO rules: SLI error ratios per window, error budget, multiwindow multi-burn-rate alerts.

Per SLO, one rule group (evaluated in order):

1. ``slo:sli_events:rate5m`` and ``slo:sli_errors:rate5m``: events and bad
   events per second over 5m, straight from the raw metrics;
2. ``slo:sli_events:rate<W>`` / ``slo:sli_errors:rate<W>`` for the longer
   windows: ``avg_over_time`` of the 5m recordings, so a 3-day window reads
   one recorded series instead of every raw series' samples;
3. ``slo:sli_error:ratio_rate<W>`` = errors / events per window (a ratio of
   averaged rates, so busy periods weigh more, like a plain ratio of counts);
4. ``slo:objective:ratio`` and ``slo:error_budget_remaining:ratio`` over the
   SLO's own window;
5. the burn-rate alerts of the Google SRE workbook with a low-traffic guard:
   ``SLOBurnRatePage`` when the 1h and 5m windows, or the 6h and 30m windows,
   are both over their threshold; ``SLOBurnRateTicket`` likewise for 1d and
   2h, or 3d and 6h. One alert per SLO and severity (as sloth writes them), so
   an incident that crosses both page windows is one page, not two; and
   ``SLOMetricAbsent``.

The burn-rate windows, factors and thresholds are in :mod:`._burn`.
"""

from __future__ import annotations

from typing import Any

from promkit.tools.generate._alert_rule import alert
from promkit.tools.generate._burn import BURN_ALERTS, BURN_WINDOWS, burn_factor
from promkit.tools.generate._durations import format_duration, parse_duration
from promkit.tools.generate._promql import bucket_le, num, sel
from promkit.tools.generate.config import Config, SLOSpec

__all__ = ["HTTP_COUNT", "SLI_WINDOWS", "sli_sources", "slo_groups"]


SLI_WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
HTTP_COUNT = "http_server_request_duration_seconds_count"


def sli_sources(config: Config, slo: SLOSpec) -> tuple[str, str, str]:
    """(events per second, bad events per second, the selector ``absent()`` watches)."""
    c = config

    def rate(metric: str, **m: str) -> str:
        return f"sum by (service) (rate({sel(c, metric, **m)}[5m]))"

    if slo.type == "availability":
        events = rate(HTTP_COUNT)
        bad = rate(HTTP_COUNT, http_response_status_class="5xx")
        watched = sel(c, HTTP_COUNT)
    elif slo.type == "latency":
        assert slo.threshold_seconds is not None
        events = rate(HTTP_COUNT)
        le = bucket_le(slo.threshold_seconds)
        bucket = rate("http_server_request_duration_seconds_bucket", le=le)
        return events, f"{events}\n-\n{bucket}", sel(
            c, "http_server_request_duration_seconds_bucket", le=le)
    elif slo.type == "job_success":
        events = rate("jobs_finished_total")
        bad = rate("jobs_finished_total", outcome="!success")
        watched = sel(c, "jobs_finished_total")
    else:  # auth_success
        events = rate("auth_attempts_total")
        bad = rate("auth_attempts_total", outcome="!success")
        watched = sel(c, "auth_attempts_total")
    # No bad-event series at all means zero bad events, not "unknown".
    return events, f"{bad}\nor\n{events} * 0", watched


def _windows(slo: SLOSpec) -> list[str]:
    windows = list(SLI_WINDOWS)
    own = format_duration(parse_duration(slo.window))
    if own not in windows:
        windows.append(own)
    return windows


def slo_groups(config: Config) -> list[dict[str, Any]]:
    c = config
    groups: list[dict[str, Any]] = []
    for slo in c.slos:
        labels = {"service": c.service, "slo": slo.name}
        match = f'{{service="{c.service}", slo="{slo.name}"}}'
        events, bad, watched = sli_sources(c, slo)
        rules: list[dict[str, Any]] = [
            {"record": "slo:sli_events:rate5m", "expr": events, "labels": labels},
            {"record": "slo:sli_errors:rate5m", "expr": bad, "labels": labels},
        ]
        windows = _windows(slo)
        for window in windows[1:]:
            for kind in ("events", "errors"):
                rules.append({
                    "record": f"slo:sli_{kind}:rate{window}",
                    "expr": f"avg_over_time(slo:sli_{kind}:rate5m{match}[{window}])",
                    "labels": labels,
                })
        for window in windows:
            rules.append({
                "record": f"slo:sli_error:ratio_rate{window}",
                "expr": (f"slo:sli_errors:rate{window}{match}\n/\n"
                         f"slo:sli_events:rate{window}{match}"),
                "labels": labels,
            })
        budget = num(slo.error_budget)
        own = format_duration(parse_duration(slo.window))
        rules.append({"record": "slo:objective:ratio", "expr": f"vector({num(slo.objective)})",
                      "labels": labels})
        rules.append({
            "record": "slo:error_budget_remaining:ratio",
            "expr": f"1 - slo:sli_error:ratio_rate{own}{match} / {budget}",
            "labels": labels,
        })
        # Minimum events per hour in the long window before a burn-rate alert may fire.
        min_rate = num(c.slo_min_events_per_hour)
        for name in BURN_ALERTS:
            pairs: list[str] = []
            said: list[str] = []
            for burn in (b for b in BURN_WINDOWS if b.alert == name):
                long, short = burn.long, burn.short
                factor = num(burn_factor(slo.window, burn))
                threshold = burn_factor(slo.window, burn) * slo.error_budget
                pairs.append(
                    f"(\n  slo:sli_error:ratio_rate{long}{match} > {factor} * {budget}\n"
                    f"  and\n  slo:sli_error:ratio_rate{short}{match} > {factor} * {budget}\n"
                    f"  and on (service, slo)\n"
                    f"  slo:sli_events:rate{long}{match} * 3600 >= {min_rate}\n)")
                said.append(f"above {factor} x the error budget ({budget}) = "
                            f"{num(threshold * 100)}% over both {long} and {short} "
                            f"({num(burn.share * 100)}% of the {slo.window} budget in {long})")
            description = (
                f"SLO {slo.name} ({slo.type}, objective {num(slo.objective * 100)}% over "
                f"{slo.window}) of {c.service}: the error ratio is {', or '.join(said)}, with at "
                f"least {min_rate} events per hour. Value: the error ratio over the long window "
                "that fired (the shorter one when both did), "
                "{{ $value | humanizePercentage }}."
            )
            longs = " or ".join(f"{b.long}" for b in BURN_WINDOWS if b.alert == name)
            rules.append(alert(
                c, name, "\nor on (service, slo)\n".join(pairs),
                labels={"slo": slo.name, "sli": slo.type},
                summary=(f"SLO {{{{ $labels.slo }}}}: error budget burning "
                         f"{'fast' if name == 'SLOBurnRatePage' else 'steadily'} "
                         f"({longs})"),
                description=description,
            ))
        # absent() keeps only the selector's equality labels (no slo): name the SLO in the text.
        rules.append(alert(
            c, "SLOMetricAbsent", f"absent({watched})",
            labels={"slo": slo.name, "sli": slo.type},
            summary=f"SLO {slo.name}: its metric is absent",
            description=f"Prometheus has no series {watched}: SLO {slo.name} cannot be "
                        "computed and its burn-rate alerts cannot fire. The service is down, "
                        "not scraped, or the metric was renamed.",
        ))
        groups.append({"name": f"promkit-slo-{slo.name}", "rules": rules})
    return groups
