"""promtool unit tests for every generated alert (``prometheus/tests/*.yml``).

For each alert: input series that must fire it (checked pending before its
``for`` has passed, firing after) and series that must keep it quiet. SLO
alerts get a case per burn-rate window pair (good traffic, then from ``onset``
every request failing, or for a pair with a faster sibling a ratio between the
two thresholds so that only this pair can fire: the long-window ratio crosses
``factor x budget`` at about ``onset + factor x budget / ratio x long``), a
low-traffic guard case and an absent-metric case. Checks read the ``ALERTS``
series (state and labels). Every alert of every SLO, and each other alert
whose annotations show no duration or smoothed count, also gets an
``alert_rule_test``: exactly that alert fires, with all its labels and its
annotations as Prometheus renders them (:func:`render` says what they must
read, from the alert's labels and the case's known value), so a template that
reads a label the expression dropped fails.

The values derive from the config's thresholds, so the tests follow a
changed threshold.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from itertools import pairwise
from typing import Any

from promkit.instrument.catalog import STANDARD_CATALOG
from promkit.tools.generate._burn import BURN_ALERTS, BURN_WINDOWS, BurnWindow, burn_factor
from promkit.tools.generate._durations import format_duration, parse_duration
from promkit.tools.generate._promql import bucket_le, num
from promkit.tools.generate._rules_compat import compat_rule_tests
from promkit.tools.generate._rules_slo import HTTP_COUNT, sli_sources
from promkit.tools.generate.config import Config, SLOSpec
from promkit.tools.generate.rules import ALERTS, SYMPTOM_SLI, alert_rules, severity

__all__ = ["rule_test_files"]

Series = tuple[str, str]  # (series selector text, promtool values notation)


def _labels(**labels: str) -> str:
    return ", ".join(f'{k}="{v}"' for k, v in labels.items())


def _counter(per_minute: Sequence[tuple[float, int]]) -> str:
    """promtool values of a counter: ``[(increase per minute, minutes), ...]``."""
    parts: list[str] = []
    value = 0.0
    first = True
    for inc, minutes in per_minute:
        start = value if first else value + inc
        count = minutes if first else minutes - 1
        parts.append(f"{num(start)}+{num(inc)}x{count}")
        value = start + inc * count
        first = False
    return " ".join(parts)


def _gauge(value: float, minutes: int) -> str:
    return f"{num(value)}x{minutes}"


_TEMPLATE = re.compile(r"\{\{\s*(.*?)\s*\}\}")


def _go_float(value: float) -> str:
    """``{{ $value }}``: Go's ``%v`` of a float64, the shortest digits that read back,
    with an exponent below 1e-4 or from 1e6 on (``61``, ``100000``, ``1.234567e+06``)."""
    value = float(value)
    if not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
    if value == 0:
        return "0"
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    assert isinstance(exponent, int)
    mantissa = "".join(map(str, digits))
    power = len(digits) - 1 + exponent
    if power < -4 or power >= 6:
        text = mantissa[0] + ("." + mantissa[1:] if len(mantissa) > 1 else "")
        text += f"e{'-' if power < 0 else '+'}{abs(power):02d}"
    else:
        text = format(Decimal(repr(abs(value))).normalize(), "f")
    return ("-" if sign else "") + text


def _humanize(value: float) -> str:
    """Prometheus's ``humanize``: SI prefixes, four significant digits."""
    if value == 0 or not math.isfinite(value):
        return f"{value:.4g}"
    prefix = ""
    if abs(value) >= 1:
        for step in ("k", "M", "G", "T", "P", "E", "Z", "Y"):
            if abs(value) < 1000:
                break
            prefix, value = step, value / 1000
    else:
        for step in ("m", "u", "n", "p", "f", "a", "z", "y"):
            if abs(value) >= 1:
                break
            prefix, value = step, value * 1000
    return f"{value:.4g}{prefix}"


def render(template: str, labels: Mapping[str, str], value: float | None) -> str:
    """What Prometheus should make of an annotation ``template`` for an alert whose labels
    are ``labels`` and whose value is ``value``: ``{{ $labels.x }}`` is the alert's label
    (so a label the expression lost renders differently from Prometheus's and the case
    fails), ``{{ $value }}``, ``| humanizePercentage`` and ``| humanize``."""

    def fill(match: re.Match[str]) -> str:
        expr = match.group(1)
        if expr.startswith("$labels."):
            return labels.get(expr.removeprefix("$labels."), "")
        if value is None:
            raise ValueError(f"{template!r} shows the value, but the case gives none")
        if expr == "$value":
            return _go_float(value)
        if expr == "$value | humanizePercentage":
            return f"{value * 100:.4g}%"
        if expr == "$value | humanize":
            return _humanize(value)
        raise ValueError(f"no expected rendering for {{{{ {expr} }}}}")

    return _TEMPLATE.sub(fill, template)


_NO_CHECK = object()
"""``value`` of a case whose labels and annotations are not asserted (see ``_fire_and_quiet``)."""


class _Case:
    def __init__(self, config: Config, name: str, alert: str, minutes: int,
                 series: list[Series], labels: dict[str, str]) -> None:
        self.config = config
        self.name = name
        self.alert = alert
        self.minutes = minutes
        self.series = series
        self.labels = labels

    def _full_labels(self) -> dict[str, str]:
        """Every label the firing alert has (the rule's and the expression's), no alertname."""
        return dict(sorted({
            "severity": severity(self.config, self.alert), "service": self.config.service,
            **({"sli": SYMPTOM_SLI[self.alert]} if self.alert in SYMPTOM_SLI else {}),
            **self.labels}.items()))

    def _alerts(self, state: str) -> str:
        labels = {"alertname": self.alert, "alertstate": state, **self._full_labels()}
        return "ALERTS{" + _labels(**dict(sorted(labels.items()))) + "}"

    def alert_test(self, minute: float, rule: Mapping[str, Any],
                   value: float | None) -> dict[str, Any]:
        """An ``alert_rule_test``: at ``minute`` exactly this alert fires, with exactly these
        labels and annotations (``rule``'s templates rendered for them and ``value``)."""
        labels = self._full_labels()
        return {"eval_time": format_duration(minute * 60), "alertname": self.alert,
                "exp_alerts": [{"exp_labels": labels, "exp_annotations": {
                    k: render(v, labels, value) for k, v in rule["annotations"].items()}}]}

    def _selector(self) -> str:
        extra = {k: v for k, v in self.labels.items() if k == "slo"}
        return "ALERTS{" + _labels(alertname=self.alert, **extra) + "}"

    def test(self, checks: list[tuple[float, str | None]],
             alerts: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
        """``checks``: (minute, None | "pending" | "firing"); ``alerts``: from
        :meth:`alert_test`."""
        tests = []
        for minute, state in checks:
            samples = [] if state is None else [{"labels": self._alerts(state), "value": 1}]
            tests.append({"expr": self._selector(), "eval_time": format_duration(minute * 60),
                          "exp_samples": samples})
        out: dict[str, Any] = {
            "name": self.name,
            "interval": "1m",
            "input_series": [{"series": s, "values": v} for s, v in self.series],
        }
        if alerts:
            out["alert_rule_test"] = list(alerts)
        out["promql_expr_test"] = tests
        return out


def _rule(config: Config, alert: str, slo: str = "") -> dict[str, Any]:
    """The generated rule of ``alert`` (for SLO alerts: of the SLO named ``slo``)."""
    return next(r for r in alert_rules(config)
                if r["alert"] == alert and r["labels"].get("slo", "") == slo)


def _for_minutes(config: Config, alert: str) -> float:
    for_ = config.alert_for.get(alert, ALERTS[alert].for_)
    return parse_duration(for_) / 60 if for_ else 0.0


def _fire_and_quiet(config: Config, alert: str, fire: list[Series], quiet: list[Series],
                    labels: dict[str, str], true_from: float = 2,
                    minutes: int | None = None, value: Any = _NO_CHECK) -> list[dict[str, Any]]:
    """Fire case (condition true from ``true_from`` minutes) and a quiet case.

    ``value``: the alert's value once firing (None when no annotation shows it): the fire
    case then also asserts every label and annotation of the firing alert.
    """
    wait = _for_minutes(config, alert)
    end = int(true_from + wait + 5) if minutes is None else minutes
    fire_checks: list[tuple[float, str | None]] = []
    if wait:
        fire_checks.append((true_from + wait / 2, "pending"))
    else:
        fire_checks.append((0, None))
    fire_checks.append((true_from + wait + 3, "firing"))
    case = _Case(config, f"{alert} fires", alert, end, fire, labels)
    alerts = [] if value is _NO_CHECK else [
        case.alert_test(true_from + wait + 3, _rule(config, alert), value)]
    return [
        case.test(fire_checks, alerts),
        _Case(config, f"{alert} stays quiet", alert, end, quiet, labels).test(
            [(true_from + wait + 3, None), (end, None)]),
    ]


def _histogram(metric: str, labels: dict[str, str], buckets: Sequence[float],
               at: float, per_minute: float, minutes: int) -> list[Series]:
    """Bucket series of a histogram whose every observation falls in bucket ``le=at``."""
    out: list[Series] = []
    for bound in (*buckets, math.inf):
        le = "+Inf" if bound == math.inf else bucket_le(bound)
        inc = per_minute if bound >= at else 0.0
        out.append((f"{metric}_bucket{{{_labels(**labels, le=le)}}}",
                    _counter([(inc, minutes)])))
    return out


def _slow_bucket(buckets: Sequence[float], threshold: float) -> float:
    """A bucket whose lower bound is at or above ``threshold`` (its quantiles exceed it)."""
    for lower, upper in pairwise(buckets):
        if lower >= threshold:
            return upper
    return math.inf


def _quantile_cases(config: Config, alert: str, metric: str, labels: dict[str, str],
                    alert_labels: dict[str, str], threshold: float) -> list[dict[str, Any]]:
    buckets = STANDARD_CATALOG[metric].buckets or ()
    minutes = int(2 + _for_minutes(config, alert) + 6)
    slow = _histogram(metric, labels, buckets, _slow_bucket(buckets, threshold), 60, minutes)
    fast = _histogram(metric, labels, buckets, buckets[0], 60, minutes)
    return _fire_and_quiet(config, alert, slow, fast, alert_labels)


def _alert_cases(config: Config) -> list[dict[str, Any]]:
    c = config
    t = c.thresholds
    svc = c.service
    cases: list[dict[str, Any]] = []
    n = 30  # minutes of input for the simple cases

    def http(bad_ratio: float, per_minute: float = 60.0) -> list[Series]:
        base = {"service": svc, "http_request_method": "GET", "http_route": "/api/items"}
        good = {**base, "http_response_status_code": "200", "http_response_status_class": "2xx"}
        bad = {**base, "http_response_status_code": "500", "http_response_status_class": "5xx"}
        return [
            (f"{HTTP_COUNT}{{{_labels(**good)}}}",
             _counter([(per_minute * (1 - bad_ratio), n)])),
            (f"{HTTP_COUNT}{{{_labels(**bad)}}}", _counter([(per_minute * bad_ratio, n)])),
        ]

    cases += _fire_and_quiet(c, "HTTPErrorRatioHigh", http(min(3 * t.http_error_ratio, 0.9)),
                             http(t.http_error_ratio / 2), {},
                             value=min(3 * t.http_error_ratio, 0.9))
    per_min_5xx = 60 * t.http_5xx_rate
    cases += _fire_and_quiet(c, "HTTP5xxRateHigh", http(0.5, 4 * per_min_5xx),
                             http(0.5, per_min_5xx), {}, value=2 * t.http_5xx_rate)
    route = {"http_request_method": "GET", "http_route": "/api/items"}
    cases += _quantile_cases(
        c, "HTTPLatencyP95High", "http_server_request_duration_seconds",
        {"service": svc, **route, "http_response_status_code": "200",
         "http_response_status_class": "2xx"}, route, t.http_p95_seconds)
    target = {"job": c.targets[0].job, "instance": c.targets[0].targets[0]}
    up = f"up{{{_labels(service=svc, **target)}}}"
    cases += _fire_and_quiet(c, "TargetDown", [(up, _gauge(0, n))], [(up, _gauge(1, n))],
                             target, true_from=0, value=None)
    queue = {"job": "queues", "instance": "127.0.0.1:9465", "queue": "jobs"}
    for alert, metric, limit in (
            ("QueueDepthHigh", "queue_depth", t.queue_depth),
            ("QueueOldestItemTooOld", "queue_oldest_item_age_seconds",
             t.queue_oldest_age_seconds)):
        s = f"{metric}{{{_labels(service=svc, **queue)}}}"
        # Exactly at the threshold stays quiet: the alert is "above".
        cases += _fire_and_quiet(c, alert, [(s, _gauge(limit * 2 + 1, n))],
                                 [(s, _gauge(limit, n))], {"queue": "jobs"}, true_from=0,
                                 # humanizeDuration (the age's summary) has no renderer here
                                 value=limit * 2 + 1 if alert == "QueueDepthHigh" else _NO_CHECK)
    s = f"queue_up{{{_labels(service=svc, **queue)}}}"
    cases += _fire_and_quiet(c, "QueueReadFailing", [(s, _gauge(0, n))], [(s, _gauge(1, n))],
                             {"queue": "jobs"}, true_from=0, value=None)
    disk = {"instance": "127.0.0.1:9464", "path": "/data"}
    s = f"system_filesystem_utilization_ratio{{{_labels(service=svc, job='worker', **disk)}}}"
    cases += _fire_and_quiet(c, "DiskUsageHigh", [(s, _gauge((1 + t.disk_used_ratio) / 2, n))],
                             [(s, _gauge(t.disk_used_ratio, n))], disk, true_from=0,
                             value=(1 + t.disk_used_ratio) / 2)
    auth = "auth_attempts_total{" + _labels(service=svc, auth_type="password",
                                            outcome="failure") + "}"
    ok = "auth_attempts_total{" + _labels(service=svc, auth_type="password",
                                          outcome="success") + "}"
    # 2x the threshold per 15m crosses it after about 7.5m; the check waits for 14m.
    cases += [
        _Case(c, "AuthFailureSpike fires", "AuthFailureSpike", n,
              [(auth, _counter([(2 * t.auth_failures_15m / 15, n)])),
               (ok, _counter([(100, n)]))], {}).test([(3, None), (14, "firing")]),
        _Case(c, "AuthFailureSpike stays quiet", "AuthFailureSpike", n,
              [(auth, _counter([(t.auth_failures_15m / 30, n)])),
               (ok, _counter([(100, n)]))], {}).test([(14, None), (n, None)]),
    ]
    stage = {"service": svc, "stage": "ocr"}

    def stages(ratio: float) -> list[Series]:
        return [
            (f"job_stage_duration_seconds_count{{{_labels(**stage)}}}", _counter([(60, n)])),
            (f"job_stage_failures_total{{{_labels(**stage, error_code='timeout')}}}",
             _counter([(60 * ratio, n)])),
        ]

    cases += _fire_and_quiet(c, "StageFailureRatioHigh",
                             stages(min(3 * t.stage_failure_ratio, 0.9)),
                             stages(t.stage_failure_ratio / 2), {"stage": "ocr"},
                             value=min(3 * t.stage_failure_ratio, 0.9))
    ext = {"service": svc, "peer_service": "llm-api", "operation": "complete"}

    def external(ratio: float) -> list[Series]:
        return [
            ("external_calls_total{" + _labels(**ext, outcome="success", status_class="2xx")
             + "}", _counter([(60 * (1 - ratio), n)])),
            ("external_calls_total{" + _labels(**ext, outcome="timeout", status_class="")
             + "}", _counter([(60 * ratio, n)])),
        ]

    ext_labels = {"peer_service": "llm-api", "operation": "complete"}
    cases += _fire_and_quiet(c, "ExternalErrorRatioHigh",
                             external(min(3 * t.external_error_ratio, 0.9)),
                             external(t.external_error_ratio / 2), ext_labels,
                             value=min(3 * t.external_error_ratio, 0.9))
    cases += _quantile_cases(c, "ExternalLatencyP95High", "external_call_duration_seconds",
                             {**ext, "outcome": "success"}, ext_labels, t.external_p95_seconds)
    llm = {"gen_ai_provider_name": "openai", "gen_ai_request_model": "gpt-4o"}
    cases += _quantile_cases(c, "LLMLatencyP95High", "gen_ai_client_operation_duration_seconds",
                             {"service": svc, **llm, "gen_ai_operation_name": "chat"}, llm,
                             t.external_p95_seconds)
    cases += _quantile_cases(c, "JobLatencyP95High", "job_duration_seconds",
                             {"service": svc, "queue": "jobs", "job_type": "ocr",
                              "outcome": "success"}, {"queue": "jobs"}, t.job_p95_seconds)
    budget = c.budgets.cpu_hours_per_month
    if budget is not None:
        cases += _cpu_cases(c, budget)
    s = "promkit_instrumentation_errors_total{" + _labels(service=svc, cause="bad_value") + "}"
    cases += _fire_and_quiet(c, "PromkitInstrumentationErrors", [(s, _counter([(1, n)]))],
                             [(s, _gauge(5, n))], {"cause": "bad_value"})
    s = "promkit_series_overflow_total{" + _labels(service=svc, metric="jobs_created_total") + "}"
    cases += _fire_and_quiet(c, "PromkitSeriesOverflow", [(s, _counter([(1, n)]))],
                             [(s, _gauge(3, n))], {"metric": "jobs_created_total"}, value=None)
    return cases


def _cpu_cases(config: Config, budget: float) -> list[dict[str, Any]]:
    """CPU budget cases. Tests start on 1970-01-01, 31 days before the month ends."""
    c = config
    s = "job_stage_cpu_seconds_total{" + _labels(service=c.service, stage="ocr") + "}"
    month = 31 * 86400
    # Projected ~ rate x month: 3x the budget's rate burns, a third of it does not.
    sustainable = budget * 3600 / month  # CPU-seconds per second
    wait = _for_minutes(c, "CPUBudgetBurn")
    burn_end = int(wait + 20)
    cases = [
        _Case(c, "CPUBudgetBurn fires", "CPUBudgetBurn", burn_end,
              [(s, _counter([(60 * 3 * sustainable, burn_end)]))], {}).test(
            [(5 + wait / 2, "pending"), (10 + wait, "firing")]),
        _Case(c, "CPUBudgetBurn stays quiet", "CPUBudgetBurn", burn_end,
              [(s, _counter([(60 * sustainable / 3, burn_end)]))], {}).test(
            [(10 + wait, None)]),
    ]
    # Exhausted: at 60 x budget CPU-seconds per second the month-to-date passes the
    # budget after about one minute per budget-hour / 60... i.e. at `budget` minutes x 60/60.
    rate = budget * 3600 / (60 * 60)  # reaches the budget after ~60 minutes
    end = 90
    cases += [
        _Case(c, "CPUBudgetExhausted fires", "CPUBudgetExhausted", end,
              [(s, _counter([(60 * rate, end)]))], {}).test([(50, None), (75, "firing")]),
        _Case(c, "CPUBudgetExhausted stays quiet", "CPUBudgetExhausted", end,
              [(s, _counter([(60 * rate / 2, end)]))], {}).test([(75, None), (end, None)]),
    ]
    # The month-to-date comes from the counters: CPU used while the target was not scraped
    # (minutes 31-59 missing) and before a restart (the counter back near 0 at minute 41)
    # counts. At a pace that reaches the budget at minute 75, minute 70 is under it and
    # minute 85 over it only if those minutes count.
    per_minute = budget * 3600 / 75
    gap = (f"0+{num(per_minute)}x30 _x29 "
           f"{num(60 * per_minute)}+{num(per_minute)}x30")
    restart = f"0+{num(per_minute)}x40 {num(per_minute)}+{num(per_minute)}x49"
    for what, values in (("a 29-minute scrape gap", gap), ("a restart", restart)):
        cases.append(_Case(c, f"CPUBudgetExhausted fires: the month-to-date counts {what}",
                           "CPUBudgetExhausted", end, [(s, values)], {}).test(
            [(70, None), (85, "firing")]))
    return cases


# -- SLO cases -----------------------------------------------------------------------------


def _slo_series(config: Config, slo: SLOSpec,
                segments: Sequence[tuple[float, float, int]]) -> list[Series]:
    """Input series of an SLO's metric: ``[(events per minute, bad ratio, minutes), ...]``."""
    svc = config.service
    good_inc = [(rate * (1 - ratio), m) for rate, ratio, m in segments]
    bad_inc = [(rate * ratio, m) for rate, ratio, m in segments]
    total_inc = [(rate, m) for rate, _, m in segments]
    if slo.type in ("availability", "latency"):
        base = {"service": svc, "http_request_method": "GET", "http_route": "/api/items"}
        good = {**base, "http_response_status_code": "200", "http_response_status_class": "2xx"}
        if slo.type == "availability":
            bad = {**base, "http_response_status_code": "500",
                   "http_response_status_class": "5xx"}
            return [(f"{HTTP_COUNT}{{{_labels(**good)}}}", _counter(good_inc)),
                    (f"{HTTP_COUNT}{{{_labels(**bad)}}}", _counter(bad_inc))]
        assert slo.threshold_seconds is not None
        le = bucket_le(slo.threshold_seconds)
        return [(f"{HTTP_COUNT}{{{_labels(**good)}}}", _counter(total_inc)),
                ("http_server_request_duration_seconds_bucket{"
                 + _labels(**good, le=le) + "}", _counter(good_inc))]
    if slo.type == "job_success":
        base = {"service": svc, "queue": "jobs", "job_type": "ocr"}
        return [
            ("jobs_finished_total{" + _labels(**base, outcome="success", error_code="")
             + "}", _counter(good_inc)),
            ("jobs_finished_total{" + _labels(**base, outcome="failure", error_code="timeout")
             + "}", _counter(bad_inc)),
        ]
    base = {"service": svc, "auth_type": "password"}
    return [("auth_attempts_total{" + _labels(**base, outcome="success") + "}",
             _counter(good_inc)),
            ("auth_attempts_total{" + _labels(**base, outcome="failure") + "}",
             _counter(bad_inc))]


def _slo_cases(config: Config, windows: Sequence[BurnWindow],
               extras: bool, slos: Sequence[SLOSpec]) -> list[dict[str, Any]]:
    c = config
    cases: list[dict[str, Any]] = []
    # Comfortably above the low-traffic guard.
    rate = max(60.0, c.slo_min_events_per_hour)  # events per minute
    for slo in slos:
        budget = slo.error_budget
        labels = {"slo": slo.name, "sli": slo.type}
        for burn in windows:
            alert, long, short = burn.alert, burn.long, burn.short
            pairs = [b for b in BURN_WINDOWS if b.alert == alert]
            threshold = burn_factor(slo.window, burn) * budget
            assert threshold < 1, "the config refuses unreachable burn thresholds"
            # Every event fails from `onset`, or, when the alert has a pair with a higher
            # threshold (faster windows), a ratio between the two so only this pair fires.
            higher = [burn_factor(slo.window, b) * budget for b in pairs
                      if burn_factor(slo.window, b) * budget > threshold]
            ratio = (threshold + min(higher)) / 2 if higher else 1.0
            long_m = int(parse_duration(long) / 60)
            short_m = int(parse_duration(short) / 60)
            cross = threshold / ratio * long_m  # minutes after onset the long ratio crosses
            onset = long_m
            quiet_at = onset + max(int(cross / 2) - 3, 0)
            fire_at = onset + min(int(cross * 1.5) + short_m + 5, long_m + short_m)
            end = fire_at + 5
            fire = _slo_series(c, slo, [(rate, 0.0, onset), (rate, ratio, end - onset + 1)])
            case = _Case(c, f"{alert} fires on {long} and {short} for SLO {slo.name}", alert,
                         end, fire, labels)
            cases.append(case.test([(quiet_at, None), (fire_at, "firing")]))
            # Errors just under the lowest threshold of the alert from the start: every window
            # reads that ratio at once, so a short run shows the alert stays quiet.
            lowest = min(burn_factor(slo.window, b) * budget for b in pairs)
            quiet_end = short_m + 30
            quiet = _slo_series(c, slo, [(rate, lowest * 0.8, quiet_end + 1)])
            case = _Case(c, f"{alert} stays quiet for SLO {slo.name} ({long} case)", alert,
                         quiet_end, quiet, labels)
            cases.append(case.test([(short_m + 10, None), (quiet_end, None)]))
        if not extras:
            continue
        # Labels and annotations of each burn-rate alert: a steady error ratio above the
        # alert's highest threshold from the start, so every window reads that ratio and the
        # alert's value (the long window's ratio) is known.
        for alert in BURN_ALERTS:
            highest = max(burn_factor(slo.window, b) * budget for b in BURN_WINDOWS
                          if b.alert == alert)
            ratio = min(1.0, round(highest * 1.5, 6))
            steady = _slo_series(c, slo, [(rate, ratio, 11)])
            case = _Case(c, f"{alert} fires for SLO {slo.name}: labels and annotations", alert,
                         10, steady, labels)
            cases.append(case.test([(10, "firing")], [
                case.alert_test(10, _rule(c, alert, slo.name), ratio)]))
        # Low-traffic guard: every event fails, but fewer events per hour than the minimum.
        alert = BURN_WINDOWS[0].alert
        per_minute = c.slo_min_events_per_hour / 60 / 2
        trickle = _slo_series(c, slo, [(per_minute, 1.0, 91)])
        case = _Case(c, f"low-traffic guard keeps {alert} quiet for SLO {slo.name}", alert, 90,
                     trickle, labels)
        cases.append(case.test([(30, None), (90, None)]))
        # The same failures at twice the minimum traffic do page.
        busy = _slo_series(c, slo, [(per_minute * 4, 1.0, 91)])
        case = _Case(c, f"{alert} pages above the traffic minimum for SLO {slo.name}", alert,
                     90, busy, labels)
        cases.append(case.test([(90, "firing")]))
        # Absent metric: fires after its `for`; quiet while the metric exists. The other
        # SLOs' metrics are there, so exactly this SLO's alert fires.
        wait = _for_minutes(c, "SLOMetricAbsent")
        end = int(wait + 10)
        watched = sli_sources(c, slo)[2].split("{", 1)[0]
        series = {s: v for o in c.slos if o is not slo
                  for s, v in _slo_series(c, o, [(rate, 0.0, end + 1)])
                  if s.split("{", 1)[0] != watched}
        series[f'up{{service="{c.service}", job="none", instance="none"}}'] = _gauge(1, end)
        case = _Case(c, f"SLOMetricAbsent fires for SLO {slo.name}", "SLOMetricAbsent", end,
                     list(series.items()), {**labels, **_absent_labels(c, slo)})
        checks: list[tuple[float, str | None]] = [(wait / 2, "pending")] if wait else []
        cases.append(case.test([*checks, (wait + 2, "firing")], [
            case.alert_test(wait + 2, _rule(c, "SLOMetricAbsent", slo.name), None)]))
        present = _slo_series(c, slo, [(rate, 0.0, end + 1)])
        case = _Case(c, f"SLOMetricAbsent stays quiet for SLO {slo.name}", "SLOMetricAbsent",
                     end, present, labels)
        cases.append(case.test([(wait + 2, None)]))
    return cases


def _absent_labels(config: Config, slo: SLOSpec) -> dict[str, str]:
    """The labels ``absent()`` copies from the equality matchers of its selector."""
    labels = {"service": config.service}
    if slo.type == "latency" and slo.threshold_seconds is not None:
        labels["le"] = bucket_le(slo.threshold_seconds)
    return labels


def rule_test_files(config: Config) -> dict[str, dict[str, Any]]:
    """promtool test files by name (under ``prometheus/tests/``)."""
    # Every SLO (each SLI source) on the page's 1h/5m windows with the guard and absent
    # cases, at 1m steps; the longer windows share that logic, so they run for the first
    # SLO only, at 5m steps (a 3-day window at 1m steps takes promtool minutes).
    fast = [w for w in BURN_WINDOWS if parse_duration(w.long) <= 3600]
    slow = [w for w in BURN_WINDOWS if w not in fast]
    files: dict[str, dict[str, Any]] = {
        "alerts_test.yml": {
            "rule_files": ["../rules/recording.yml", "../rules/alerts.yml"],
            "evaluation_interval": "1m",
            "tests": _alert_cases(config),
        },
    }
    if config.compat_rules:
        files["compat_test.yml"] = compat_rule_tests(config)
    if config.slos:
        files["slo_test.yml"] = {
            "rule_files": ["../rules/slo.yml"],
            "evaluation_interval": "1m",
            "tests": _slo_cases(config, fast, extras=True, slos=config.slos),
        }
        files["slo_slow_test.yml"] = {
            "rule_files": ["../rules/slo.yml"],
            "evaluation_interval": "5m",
            "tests": _slo_cases(config, slow, extras=False, slos=config.slos[:1]),
        }
    return files
