"""What is failing and why? 5xx by route and status code, stage and job failures by
error code, external-call outcomes."""

from __future__ import annotations

from typing import Any

from promkit.tools.report._change import change
from promkit.tools.report._figures import (
    ROUTE_KEYS,
    index,
    labels_of,
    num,
    ratio_of,
    route_name,
    whole,
)
from promkit.tools.report.issues import Issue, Severity
from promkit.tools.report.queries import Collected
from promkit.tools.report.thresholds import FLOOR, Thresholds

__all__ = ["failures_section"]


def failures_section(c: Collected, t: Thresholds, issues: list[Issue]) -> dict[str, Any]:
    keys = ROUTE_KEYS
    reqs = index(c.instant.get("http_requests", []), *keys)
    errs = index(c.instant.get("http_errors", []), *keys)
    prev_reqs = index(c.instant.get("prev_http_requests", []), *keys)
    prev_errs = index(c.instant.get("prev_http_errors", []), *keys)
    route_codes: dict[tuple[str, ...], dict[str, int]] = {}
    for s in c.instant.get("http_error_codes", []):
        count = whole(s.value)
        if count:
            key = tuple(s.labels.get(k, "") for k in keys)
            route_codes.setdefault(key, {})[s.labels.get("http_response_status_code", "")] = count
    routes: list[dict[str, Any]] = []
    for key, n in reqs.items():
        e = errs.get(key, 0.0)
        ratio = ratio_of(e, n)
        routes.append({"route": key[0], "method": key[1], "requests": whole(n),
                       "errors": whole(e), "error_ratio": num(ratio)})
        if ratio is not None and ratio > t.http_error_ratio and e >= 1 and n >= t.min_requests:
            severity: Severity = "critical" if ratio >= 5 * t.http_error_ratio else "warning"
            codes = route_codes.get(key, {})
            shown = ", ".join(f"{n} × {code}" for code, n in sorted(
                codes.items(), key=lambda x: -x[1])) or "5xx"
            issues.append(Issue(severity, "http_errors", route_name(key),
                                f"{route_name(key)} fails {ratio:.1%} of requests "
                                f"({whole(e)} of {whole(n)}: {shown})", ratio, "ratio",
                                change=change(ratio, ratio_of(prev_errs.get(key, 0.0),
                                                            prev_reqs.get(key)),
                                              FLOOR * t.http_error_ratio),
                                evidence={"status_codes": codes, "errors": whole(e),
                                          "requests": whole(n)},
                                labels=labels_of(keys, key)))
    routes.sort(key=lambda r: (-(r["error_ratio"] or 0), -(r["requests"] or 0)))

    s_runs = index(c.instant.get("stage_runs", []), "stage")
    prev_runs = index(c.instant.get("prev_stage_runs", []), "stage")
    prev_failed: dict[str, float] = {}
    for s in c.instant.get("prev_stage_failures", []):
        stage = s.labels.get("stage", "")
        prev_failed[stage] = prev_failed.get(stage, 0.0) + (num(s.value) or 0.0)
    stage_failures: list[dict[str, Any]] = []
    per_stage: dict[str, float] = {}
    for s in c.instant.get("stage_failures", []):
        stage, code = s.labels.get("stage", ""), s.labels.get("error_code", "")
        if not whole(s.value):
            continue
        stage_failures.append({"stage": stage, "error_code": code, "count": whole(s.value)})
        per_stage[stage] = per_stage.get(stage, 0.0) + (num(s.value) or 0.0)
    stage_failures.sort(key=lambda x: -(x["count"] or 0))
    for stage, failed in sorted(per_stage.items()):
        runs = s_runs.get((stage,))
        ratio = ratio_of(failed, runs)
        if ratio is None or ratio > t.stage_failure_ratio:
            codes = {f["error_code"]: f["count"] for f in stage_failures if f["stage"] == stage}
            names = ", ".join(f"{n} × {code}" for code, n in codes.items())
            previous = ratio_of(prev_failed.get(stage, 0.0), prev_runs.get((stage,)))
            issues.append(Issue("warning", "stage_failures", stage,
                                f"stage {stage} failed {whole(failed)} times"
                                + (f" ({ratio:.1%} of runs)" if ratio is not None else "")
                                + f": {names}", ratio if ratio is not None else failed,
                                "ratio" if ratio is not None else "failures",
                                change=(change(ratio, previous, FLOOR * t.stage_failure_ratio)
                                        if ratio is not None else None),
                                evidence={"error_codes": codes, "failures": whole(failed),
                                          "runs": whole(runs)},
                                labels={"stage": stage}))

    job_failures: list[dict[str, Any]] = [
        {"queue": s.labels.get("queue", ""), "job_type": s.labels.get("job_type", ""),
         "error_code": s.labels.get("error_code", ""), "count": whole(s.value)}
        for s in c.instant.get("job_failures", []) if whole(s.value)]
    job_failures.sort(key=lambda x: -(x["count"] or 0))
    _job_failure_issues(c, t, issues)

    def outcomes_of(name: str) -> dict[tuple[str, str], dict[str, float]]:
        out: dict[tuple[str, str], dict[str, float]] = {}
        for s in c.instant.get(name, []):
            key = (s.labels.get("peer_service", ""), s.labels.get("operation", ""))
            by = out.setdefault(key, {})
            outcome = s.labels.get("outcome", "")
            by[outcome] = by.get(outcome, 0.0) + (num(s.value) or 0.0)
        return out

    def bad_ratio(by_outcome: dict[str, float] | None) -> float | None:
        if not by_outcome:
            return None
        bad = by_outcome.get("error", 0.0) + by_outcome.get("timeout", 0.0)
        return ratio_of(bad, sum(by_outcome.values()))

    previous_outcomes = outcomes_of("prev_ext_outcomes")
    external: list[dict[str, Any]] = []
    for key, by_outcome in sorted(outcomes_of("ext_outcomes").items()):
        counts = {name: whole(by_outcome.get(name, 0.0)) or 0
                  for name in ("success", "error", "timeout")}
        ratio = bad_ratio(by_outcome)
        calls = whole(sum(by_outcome.values()))
        external.append({"service": key[0], "operation": key[1], "calls": calls, **counts,
                         "error_ratio": ratio})
        if ratio is not None and ratio > t.external_error_ratio and (
                counts["error"] + counts["timeout"]) >= 1:
            subject = f"{key[0]}/{key[1]}"
            issues.append(Issue("warning", "external_errors", subject,
                                f"external call {subject}: {ratio:.1%} errors or timeouts "
                                f"({counts['error']} errors, {counts['timeout']} timeouts "
                                f"of {calls} calls)", ratio, "ratio",
                                change=change(ratio, bad_ratio(previous_outcomes.get(key)),
                                              FLOOR * t.external_error_ratio),
                                evidence={"calls": calls, **counts},
                                labels={"peer_service": key[0], "operation": key[1]}))

    totals: dict[tuple[str, str], int] = {}
    for by_code in route_codes.values():
        for code, n in by_code.items():
            totals[("http", code)] = totals.get(("http", code), 0) + n
    for f in stage_failures:
        k = ("stage", f["error_code"])
        totals[k] = totals.get(k, 0) + f["count"]
    for f in job_failures:
        k = ("job", f["error_code"])
        totals[k] = totals.get(k, 0) + f["count"]
    top: list[dict[str, Any]] = [{"source": k[0], "code": k[1], "count": v}
                                 for k, v in totals.items() if v > 0]
    top.sort(key=lambda x: -x["count"])
    return {"routes": routes, "stages": stage_failures, "jobs": job_failures,
            "external": external, "top_error_codes": top[:10]}


def _job_failure_issues(c: Collected, t: Thresholds, issues: list[Issue]) -> None:
    """Jobs that ended in failure (any outcome but success, by error code) over the jobs
    that ended, per queue and job type: what the job-success SLO counts."""
    keys = ("queue", "job_type")

    def failed_by(name: str) -> dict[tuple[str, ...], dict[str, float]]:
        out: dict[tuple[str, ...], dict[str, float]] = {}
        for s in c.instant.get(name, []):
            codes = out.setdefault(tuple(s.labels.get(k, "") for k in keys), {})
            code = s.labels.get("error_code", "") or "unknown"
            codes[code] = codes.get(code, 0.0) + (num(s.value) or 0.0)
        return out

    finished = index(c.instant.get("job_finished", []), *keys)
    prev_finished = index(c.instant.get("prev_job_finished", []), *keys)
    previous = failed_by("prev_job_failures")
    for key, codes in sorted(failed_by("job_failures").items()):
        failed = sum(codes.values())
        ratio = ratio_of(failed, finished.get(key))
        if ratio is None or ratio <= t.job_failure_ratio or not whole(failed):
            continue
        counts = {code: whole(n) for code, n in sorted(codes.items(), key=lambda x: -x[1])}
        subject = f"{key[0]}/{key[1]}"
        shown = ", ".join(f"{n} × {code}" for code, n in counts.items())
        issues.append(Issue("warning", "job_failures", subject,
                            f"jobs {subject} failed {whole(failed)} of "
                            f"{whole(finished.get(key))} ({ratio:.1%}): {shown}", ratio, "ratio",
                            change=change(ratio, ratio_of(sum(previous.get(key, {}).values()),
                                                          prev_finished.get(key)),
                                          FLOOR * t.job_failure_ratio),
                            evidence={"error_codes": counts, "failures": whole(failed),
                                      "jobs": whole(finished.get(key))},
                            labels=labels_of(keys, key)))
