"""The jobs and stages dashboard: job throughput and latency split, stages, queues."""

from __future__ import annotations

from promkit.tools.generate._grafana_kit import (
    FIRING,
    INSTANCE,
    RATE,
    STAGE,
    pct,
    raw_quantile,
    rule_quantiles,
    sel,
    target,
    variables,
)
from promkit.tools.generate._grafana_model import DashboardSpec, PanelSpec, RowSpec
from promkit.tools.generate.config import Config

__all__ = ["jobs_dashboard"]


def jobs_dashboard(config: Config) -> DashboardSpec:
    t = config.thresholds
    jobs = RowSpec("Jobs", (
        PanelSpec("job-throughput", "Jobs created and finished per second",
                  "Jobs enqueued per second by queue (service_queue:jobs_created:rate5m) and "
                  "finished per second by queue and outcome "
                  "(service_queue:jobs_finished:rate5m).", "cps",
                  (target(f"sum by (queue) ({sel('service_queue:jobs_created:rate5m')})",
                          "created {{queue}}"),
                   target(f"sum by (queue, outcome) ({sel('service_queue:jobs_finished:rate5m')})",
                          "finished {{queue}} {{outcome}}")),
                  width=8, min=0),
        PanelSpec("job-failure-ratio", "Job failure ratio by queue",
                  "Share of finished jobs whose outcome is not success, over 5 minutes "
                  "(service_queue:job_failure_ratio:ratio_rate5m).", "percentunit",
                  (target(sel("service_queue:job_failure_ratio:ratio_rate5m"), "{{queue}}"),),
                  width=8, min=0),
        PanelSpec("jobs-in-flight", "Jobs in flight",
                  "Jobs being run now by instance and job type (jobs_in_flight).", "short",
                  (target(f"sum by (instance, job_type) ({sel('jobs_in_flight', INSTANCE)})",
                          "{{instance}} {{job_type}}"),),
                  width=8, min=0),
        PanelSpec("job-latency-split", "Job time split: queue wait + run (mean, stacked)",
                  "Mean time a job waits in its queue and mean time it runs, stacked, over 5 "
                  "minutes (service_queue:job_queue_wait_seconds:mean5m, "
                  "service_queue:job_run_duration_seconds:mean5m); the stack's top is about "
                  "the mean total latency.", "s",
                  (target(sel("service_queue:job_queue_wait_seconds:mean5m"),
                          "queue wait {{queue}}"),
                   target(sel("service_queue:job_run_duration_seconds:mean5m"), "run {{queue}}")),
                  width=12, stacked=True, min=0),
        PanelSpec("job-latency-quantiles", "Job latency p95: queue wait vs run vs total",
                  "95th percentiles over 5 minutes of queue wait, run time and total latency "
                  "(creation to terminal status) by queue (service_queue:*:p95_5m), and the "
                  "total p99 from the raw buckets with exemplars. The alert fires when total "
                  f"p95 is above {t.job_p95_seconds:g}s.", "s",
                  (target(sel("service_queue:job_queue_wait_seconds:p95_5m"),
                          "p95 queue wait {{queue}}"),
                   target(sel("service_queue:job_run_duration_seconds:p95_5m"),
                          "p95 run {{queue}}"),
                   target(sel("service_queue:job_duration_seconds:p95_5m"), "p95 total {{queue}}"),
                   target(raw_quantile("job_duration_seconds", "0.99", "queue"),
                          "p99 total {{queue}}", exemplar=True)),
                  width=12, min=0, thresholds=((t.job_p95_seconds, "red"),)),
    ))
    stages = RowSpec("Stages", (
        PanelSpec("stage-latency", "Stage latency p50 / p95 / p99",
                  "Wall time of each job stage over 5 minutes "
                  "(service_stage:job_stage_duration_seconds:p50_5m, p95_5m, p99_5m), and the "
                  "p99 from the raw buckets with exemplars.", "s",
                  (*rule_quantiles("service_stage:job_stage_duration_seconds", "{{stage}}",
                                   STAGE),
                   target(raw_quantile("job_stage_duration_seconds", "0.99", "stage", STAGE),
                          "p99 raw {{stage}}", exemplar=True)),
                  width=12, min=0),
        PanelSpec("stage-cpu", "CPU per stage (1 = one core)",
                  "CPU seconds per second spent in each stage, thread CPU clock "
                  "(service_stage:job_stage_cpu_seconds:rate5m); 100% is one core busy.",
                  "percentunit",
                  (target(sel("service_stage:job_stage_cpu_seconds:rate5m", STAGE), "{{stage}}"),),
                  width=12, stacked=True, min=0),
        PanelSpec("stage-failures", "Stage failures by stage and error code",
                  "Stage failures per second by stage and error code (raw "
                  "job_stage_failures_total: the recording rule drops error_code).", "cps",
                  (target(f"sum by (stage, error_code) "
                          f"(rate({sel('job_stage_failures_total', STAGE)}{RATE}))",
                          "{{stage}} {{error_code}}"),),
                  width=12, stacked=True, min=0),
        PanelSpec("stage-failure-ratio", "Stage failure ratio",
                  "Failed runs over all runs of each stage, over 5 minutes "
                  "(service_stage:job_stage_failure_ratio:ratio_rate5m); the alert fires "
                  f"above {pct(t.stage_failure_ratio)}.", "percentunit",
                  (target(sel("service_stage:job_stage_failure_ratio:ratio_rate5m", STAGE),
                          "{{stage}}"),),
                  width=12, min=0, thresholds=((t.stage_failure_ratio, "red"),)),
    ))
    queues = RowSpec("Queues and cache", (
        PanelSpec("queue-depth", "Queue depth",
                  "Items waiting in each queue (service_queue:queue_depth:max); the alert "
                  f"fires above {t.queue_depth:g}.", "short",
                  (target(sel("service_queue:queue_depth:max"), "{{queue}}"),),
                  width=6, min=0, thresholds=((t.queue_depth, "red"),)),
        PanelSpec("queue-oldest-age", "Oldest item age",
                  "Age of the oldest item waiting in each queue "
                  "(service_queue:queue_oldest_item_age_seconds:max); the alert fires above "
                  f"{t.queue_oldest_age_seconds:g}s.", "s",
                  (target(sel("service_queue:queue_oldest_item_age_seconds:max"), "{{queue}}"),),
                  width=6, min=0, thresholds=((t.queue_oldest_age_seconds, "red"),)),
        PanelSpec("enqueue-depth", "Queue depth seen at enqueue (p95)",
                  "95th percentile of the queue depth a producer saw when it enqueued a job "
                  "(service_queue:job_enqueue_queue_depth:p95_5m).", "short",
                  (target(sel("service_queue:job_enqueue_queue_depth:p95_5m"), "{{queue}}"),),
                  width=6, min=0),
        PanelSpec("cache-hit-ratio", "Cache hit ratio",
                  "Cache hits over all lookups by cache, over 5 minutes "
                  "(service_cache:cache_hit_ratio:ratio_rate5m).", "percentunit",
                  (target(sel("service_cache:cache_hit_ratio:ratio_rate5m"), "{{cache}}"),),
                  width=6, min=0, max=1),
        PanelSpec("queue-up", "Queue reads up",
                  "1 when the queue exporter's last read of the queue succeeded, 0 when it "
                  "failed or timed out (queue_up); QueueReadFailing fires after 5 minutes "
                  "at 0, and depth and age are unknown meanwhile.", "bool_yes_no",
                  (target(f"min by (queue) ({sel('queue_up')})", "{{queue}}", instant=True),),
                  kind="stat", width=6, base_color="red", thresholds=((0.5, "green"),)),
        PanelSpec("stream-groups", "Stream consumer groups: pending and lag",
                  "Entries delivered to a consumer group but not acknowledged "
                  "(service_queue:queue_stream_pending:max) and entries not yet delivered to "
                  "it (service_queue:queue_stream_lag:max), per stream and group.", "short",
                  (target(sel("service_queue:queue_stream_pending:max"),
                          "pending {{queue}} {{group}}"),
                   target(sel("service_queue:queue_stream_lag:max"), "lag {{queue}} {{group}}")),
                  width=18, min=0),
        PanelSpec("job-exceptions", "Skipped, recovered jobs and cold starts",
                  "Jobs skipped or evicted (service:jobs_skipped:rate5m), recovered or "
                  "requeued (service:jobs_recovered:rate5m), and worker cold starts "
                  "(service:worker_cold_starts:rate5m), per second.", "cps",
                  (target(sel("service:jobs_skipped:rate5m"), "skipped {{job_type}} {{reason}}"),
                   target(sel("service:jobs_recovered:rate5m"),
                          "recovered {{job_type}} {{reason}}"),
                   target(sel("service:worker_cold_starts:rate5m"), "cold starts {{worker_type}}")),
                  width=24, min=0),
        PanelSpec("job-transitions", "Job status transitions per second",
                  "Jobs moving from one status to another per second by job type (raw "
                  "job_status_transitions_total: no recording rule keeps both statuses).",
                  "cps",
                  (target(f"sum by (job_type, from_status, to_status) "
                          f"(rate({sel('job_status_transitions_total')}{RATE}))",
                          "{{job_type}} {{from_status}} → {{to_status}}"),),
                  width=12, min=0, stacked=True),
        PanelSpec("job-persist-failures", "Job persist failures per second",
                  "Failures to store a job's state or result, per second by store "
                  "(service:job_persist_failures:rate5m): the job ran but its record may be "
                  "stale.", "cps",
                  (target(sel("service:job_persist_failures:rate5m"), "{{store}}"),),
                  width=12, min=0),
    ))
    return DashboardSpec(
        "promkit-jobs", "jobs-stages.json", "promkit / Jobs and stages",
        "Job throughput and outcomes, queue wait vs run vs total latency, per-stage latency, "
        "CPU and failures, queue depth and age, cache hit ratio.",
        variables(config, "service", "stage", "instance"), (jobs, stages, queues),
        annotations=(FIRING,))
