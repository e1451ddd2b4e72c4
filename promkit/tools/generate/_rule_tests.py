"""promtool unit tests for every generated alert (``prometheus/tests/*.yml``).

For each alert: input series that must fire it (checked pending before its
``for`` has passed, firing after) and series that must keep it quiet. SLO
alerts get a case per burn-rate window pair (good traffic, then from ``onset``
every request failing, or for a pair with a faster sibling a ratio between the
two thresholds so that only this pair can fire: the long-window ratio crosses
``factor x budget`` at about ``onset + factor x budget / ratio x long``), a
low-traffic guard case and an absent-metric case. Checks read the ``ALERTS``
series, so each can filter by labels (``slo``) and annotations need no exact
rendering here (the live test reads them from the API).

The values derive from the config's thresholds, so the tests follow a
changed threshold.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise
from typing import Any

from promkit.instrument.catalog import STANDARD_CATALOG
from promkit.tools.generate._rules_slo import (
    BURN_WINDOWS,
    HTTP_COUNT,
    BurnWindow,
    _bucket_le,
    burn_factor,
)
from promkit.tools.generate.config import Config, SLOSpec, format_duration, parse_duration
from promkit.tools.generate.rules import ALERTS, SYMPTOM_SLI, num, severity

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


class _Case:
    def __init__(self, config: Config, name: str, alert: str, minutes: int,
                 series: list[Series], labels: dict[str, str]) -> None:
        self.config = config
        self.name = name
        self.alert = alert
        self.minutes = minutes
        self.series = series
        self.labels = labels

    def _alerts(self, state: str) -> str:
        labels = {"alertname": self.alert, "alertstate": state,
                  "severity": severity(self.config, self.alert), "service": self.config.service,
                  **({"sli": SYMPTOM_SLI[self.alert]} if self.alert in SYMPTOM_SLI else {}),
                  **self.labels}
        return "ALERTS{" + _labels(**dict(sorted(labels.items()))) + "}"

    def _selector(self) -> str:
        extra = {k: v for k, v in self.labels.items() if k == "slo"}
        return "ALERTS{" + _labels(alertname=self.alert, **extra) + "}"

    def test(self, checks: list[tuple[float, str | None]]) -> dict[str, Any]:
        """``checks``: (minute, None | "pending" | "firing")."""
        tests = []
        for minute, state in checks:
            samples = [] if state is None else [{"labels": self._alerts(state), "value": 1}]
            tests.append({"expr": self._selector(), "eval_time": format_duration(minute * 60),
                          "exp_samples": samples})
        return {
            "name": self.name,
            "interval": "1m",
            "input_series": [{"series": s, "values": v} for s, v in self.series],
            "promql_expr_test": tests,
        }


def _for_minutes(config: Config, alert: str) -> float:
    for_ = config.alert_for.get(alert, ALERTS[alert].for_)
    return parse_duration(for_) / 60 if for_ else 0.0


def _fire_and_quiet(config: Config, alert: str, fire: list[Series], quiet: list[Series],
                    labels: dict[str, str], true_from: float = 2,
                    minutes: int | None = None) -> list[dict[str, Any]]:
    """Fire case (condition true from ``true_from`` minutes) and a quiet case."""
    wait = _for_minutes(config, alert)
    end = int(true_from + wait + 5) if minutes is None else minutes
    fire_checks: list[tuple[float, str | None]] = []
    if wait:
        fire_checks.append((true_from + wait / 2, "pending"))
    else:
        fire_checks.append((0, None))
    fire_checks.append((true_from + wait + 3, "firing"))
    return [
        _Case(config, f"{alert} fires", alert, end, fire, labels).test(fire_checks),
        _Case(config, f"{alert} stays quiet", alert, end, quiet, labels).test(
            [(true_from + wait + 3, None), (end, None)]),
    ]


def _histogram(metric: str, labels: dict[str, str], buckets: Sequence[float],
               at: float, per_minute: float, minutes: int) -> list[Series]:
    """Bucket series of a histogram whose every observation falls in bucket ``le=at``."""
    out: list[Series] = []
    for bound in (*buckets, math.inf):
        le = "+Inf" if bound == math.inf else _bucket_le(bound)
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
                             http(t.http_error_ratio / 2), {})
    per_min_5xx = 60 * t.http_5xx_rate
    cases += _fire_and_quiet(c, "HTTP5xxRateHigh", http(0.5, 4 * per_min_5xx),
                             http(0.5, per_min_5xx), {})
    route = {"http_request_method": "GET", "http_route": "/api/items"}
    cases += _quantile_cases(
        c, "HTTPLatencyP95High", "http_server_request_duration_seconds",
        {"service": svc, **route, "http_response_status_code": "200",
         "http_response_status_class": "2xx"}, route, t.http_p95_seconds)
    target = {"job": c.targets[0].job, "instance": c.targets[0].targets[0]}
    up = f"up{{{_labels(service=svc, **target)}}}"
    cases += _fire_and_quiet(c, "TargetDown", [(up, _gauge(0, n))], [(up, _gauge(1, n))],
                             target, true_from=0)
    queue = {"job": "queues", "instance": "127.0.0.1:9465", "queue": "jobs"}
    for alert, metric, limit in (
            ("QueueDepthHigh", "queue_depth", t.queue_depth),
            ("QueueOldestItemTooOld", "queue_oldest_item_age_seconds",
             t.queue_oldest_age_seconds)):
        s = f"{metric}{{{_labels(service=svc, **queue)}}}"
        # Exactly at the threshold stays quiet: the alert is "above".
        cases += _fire_and_quiet(c, alert, [(s, _gauge(limit * 2 + 1, n))],
                                 [(s, _gauge(limit, n))], {"queue": "jobs"}, true_from=0)
    s = f"queue_up{{{_labels(service=svc, **queue)}}}"
    cases += _fire_and_quiet(c, "QueueReadFailing", [(s, _gauge(0, n))], [(s, _gauge(1, n))],
                             {"queue": "jobs"}, true_from=0)
    disk = {"instance": "127.0.0.1:9464", "path": "/data"}
    s = f"system_filesystem_utilization_ratio{{{_labels(service=svc, job='worker', **disk)}}}"
    cases += _fire_and_quiet(c, "DiskUsageHigh", [(s, _gauge((1 + t.disk_used_ratio) / 2, n))],
                             [(s, _gauge(t.disk_used_ratio, n))], disk, true_from=0)
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
                             stages(t.stage_failure_ratio / 2), {"stage": "ocr"})
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
                             external(t.external_error_ratio / 2), ext_labels)
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
                             [(s, _gauge(3, n))], {"metric": "jobs_created_total"})
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
        le = _bucket_le(slo.threshold_seconds)
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
        # Absent metric: fires after its `for`; quiet while the metric exists.
        wait = _for_minutes(c, "SLOMetricAbsent")
        other = f'up{{service="{c.service}", job="none", instance="none"}}'
        end = int(wait + 10)
        case = _Case(c, f"SLOMetricAbsent fires for SLO {slo.name}", "SLOMetricAbsent", end,
                     [(other, _gauge(1, end))], {**labels, **_absent_labels(c, slo)})
        checks: list[tuple[float, str | None]] = [(wait / 2, "pending")] if wait else []
        cases.append(case.test([*checks, (wait + 2, "firing")]))
        present = _slo_series(c, slo, [(rate, 0.0, end + 1)])
        case = _Case(c, f"SLOMetricAbsent stays quiet for SLO {slo.name}", "SLOMetricAbsent",
                     end, present, labels)
        cases.append(case.test([(wait + 2, None)]))
    return cases


def _absent_labels(config: Config, slo: SLOSpec) -> dict[str, str]:
    """The labels ``absent()`` copies from the equality matchers of its selector."""
    labels = {"service": config.service}
    if slo.type == "latency" and slo.threshold_seconds is not None:
        labels["le"] = _bucket_le(slo.threshold_seconds)
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
