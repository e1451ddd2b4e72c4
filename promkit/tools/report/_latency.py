"""Where is the time going? Routes, jobs, external calls and stages, by quantile."""

from __future__ import annotations

from typing import Any

from promkit.tools.report._change import change
from promkit.tools.report._figures import (
    ROUTE_KEYS,
    bounds,
    bucket_quantiles,
    fmt_quantile,
    fmt_seconds,
    index,
    labels_of,
    num,
    q_value,
    route_name,
    whole,
)
from promkit.tools.report.issues import Issue
from promkit.tools.report.queries import Collected
from promkit.tools.report.thresholds import FLOOR, Thresholds

__all__ = ["latency_section"]


def latency_section(c: Collected, t: Thresholds, issues: list[Issue]) -> dict[str, Any]:
    p50 = bucket_quantiles(c, "http", ROUTE_KEYS, 0.5)
    p95 = bucket_quantiles(c, "http", ROUTE_KEYS, 0.95)
    prev95 = bucket_quantiles(c, "http", ROUTE_KEYS, 0.95, previous=True)
    reqs = index(c.instant.get("http_requests", []), *ROUTE_KEYS)
    w = c.window.seconds
    routes: list[dict[str, Any]] = []
    for key in sorted(set(reqs) | set(p95)):
        n = reqs.get(key)
        q50, q95 = p50.get(key), p95.get(key)
        routes.append({"route": key[0], "method": key[1], "requests": whole(n),
                       "rps": num(n / w) if n is not None else None,
                       "p50_seconds": q_value(q50), "p95_seconds": q_value(q95),
                       "quantile_bounds": bounds(p50_seconds=q50, p95_seconds=q95)})
        if q95 is not None and q95.value > t.http_p95_seconds and (n or 0) >= t.min_requests:
            issues.append(Issue("warning", "http_latency", route_name(key),
                                f"{route_name(key)} p95 is {fmt_quantile(q95)} "
                                f"(threshold {fmt_seconds(t.http_p95_seconds)})", q95.value,
                                "seconds",
                                change=change(q95.value, q_value(prev95.get(key)),
                                              FLOOR * t.http_p95_seconds),
                                evidence={"requests": whole(n), "p95_seconds": q95.value},
                                labels=labels_of(ROUTE_KEYS, key)))
    routes.sort(key=lambda r: -(r["p95_seconds"] or 0))

    jkeys = ("queue", "job_type")
    quantiles = {f"{part}_p{p}": bucket_quantiles(c, f"job_{part}", jkeys, int(p) / 100)
                 for part in ("wait", "run") for p in ("50", "95")}
    total95 = bucket_quantiles(c, "job_total", jkeys, 0.95)
    prev_total95 = bucket_quantiles(c, "job_total", jkeys, 0.95, previous=True)
    count = index(c.instant.get("job_count", []), *jkeys)
    jobs: list[dict[str, Any]] = []
    for key in sorted(set(count).union(total95, *quantiles.values())):
        fields = {"queue_wait_p50_seconds": quantiles["wait_p50"].get(key),
                  "queue_wait_p95_seconds": quantiles["wait_p95"].get(key),
                  "run_p50_seconds": quantiles["run_p50"].get(key),
                  "run_p95_seconds": quantiles["run_p95"].get(key),
                  "total_p95_seconds": total95.get(key)}
        entry: dict[str, Any] = {"queue": key[0], "job_type": key[1],
                                 "jobs": whole(count.get(key))}
        entry.update({name: q_value(q) for name, q in fields.items()})
        entry["quantile_bounds"] = bounds(**fields)
        jobs.append(entry)
        total = total95.get(key)
        if total is not None and total.value > t.job_p95_seconds:
            subject = f"{key[0]}/{key[1]}"
            issues.append(Issue("warning", "job_latency", subject,
                                f"jobs {subject} p95 is {fmt_quantile(total)} "
                                f"(threshold {fmt_seconds(t.job_p95_seconds)})", total.value,
                                "seconds",
                                change=change(total.value, q_value(prev_total95.get(key)),
                                              FLOOR * t.job_p95_seconds),
                                evidence={"jobs": entry["jobs"],
                                          "queue_wait_p95_seconds":
                                              entry["queue_wait_p95_seconds"],
                                          "run_p95_seconds": entry["run_p95_seconds"]},
                                labels=labels_of(jkeys, key)))

    ekeys = ("peer_service", "operation")
    ext_p95 = bucket_quantiles(c, "ext", ekeys, 0.95)
    prev_ext_p95 = bucket_quantiles(c, "ext", ekeys, 0.95, previous=True)
    ext_mean = index(c.instant.get("ext_mean", []), *ekeys)
    external: list[dict[str, Any]] = []
    for key in sorted(set(ext_p95) | set(ext_mean)):
        q = ext_p95.get(key)
        external.append({"service": key[0], "operation": key[1], "p95_seconds": q_value(q),
                         "mean_seconds": num(ext_mean.get(key)),
                         "quantile_bounds": bounds(p95_seconds=q)})
        if q is not None and q.value > t.external_p95_seconds:
            subject = f"{key[0]}/{key[1]}"
            issues.append(Issue("warning", "external_latency", subject,
                                f"external call {subject} p95 is {fmt_quantile(q)}", q.value,
                                "seconds", change=change(q.value, q_value(prev_ext_p95.get(key)),
                                                         FLOOR * t.external_p95_seconds),
                                evidence={"p95_seconds": q.value},
                                labels=labels_of(ekeys, key)))
    external.sort(key=lambda e: -(e["p95_seconds"] or 0))

    s_p95 = bucket_quantiles(c, "stage", ("stage",), 0.95)
    s_mean = index(c.instant.get("stage_mean", []), "stage")
    s_runs = index(c.instant.get("stage_runs", []), "stage")
    s_cpu = index(c.instant.get("stage_cpu", []), "stage")
    stages: list[dict[str, Any]] = []
    for key in set(s_p95) | set(s_runs):
        runs = num(s_runs.get(key))
        mean = num(s_mean.get(key))
        q = s_p95.get(key)
        stages.append({"stage": key[0], "runs": whole(runs), "p95_seconds": q_value(q),
                       "mean_seconds": mean, "cpu_seconds": num(s_cpu.get(key)),
                       "total_seconds": mean * runs if mean is not None and runs else None,
                       "quantile_bounds": bounds(p95_seconds=q)})
    stages.sort(key=lambda s: -(s["total_seconds"] or s["p95_seconds"] or 0))
    return {"routes": routes, "jobs": jobs, "external": external, "stages": stages}
