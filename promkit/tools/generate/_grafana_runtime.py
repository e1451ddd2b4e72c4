"""The dashboards of the processes themselves: resources, and promkit's self-monitoring."""

from __future__ import annotations

from promkit.tools.generate._grafana_kit import (
    FIRING,
    INSTANCE,
    RATE,
    pct,
    raw_quantile,
    sel,
    target,
    variables,
)
from promkit.tools.generate._grafana_model import DashboardSpec, PanelSpec, RowSpec
from promkit.tools.generate.config import Config

__all__ = ["resources_dashboard", "self_monitoring_dashboard"]


# -- Resources ---------------------------------------------------------------------------------


def resources_dashboard(config: Config) -> DashboardSpec:
    t = config.thresholds
    who = "{{job}} {{instance}}"
    row = RowSpec("Process and host", (
        PanelSpec("memory-rss", "Resident memory (RSS)",
                  "Resident memory of each process (process_memory_usage_bytes).", "bytes",
                  (target(f"max by (job, instance) ({sel('process_memory_usage_bytes', INSTANCE)})",
                          who),),
                  width=8, min=0),
        PanelSpec("cpu", "CPU (1 = one core)",
                  "CPU seconds per second used by each process "
                  "(rate of process_cpu_time_seconds_total); 100% is one core busy.",
                  "percentunit",
                  (target(f"sum by (job, instance) "
                          f"(rate({sel('process_cpu_time_seconds_total', INSTANCE)}{RATE}))",
                          who),),
                  width=8, min=0),
        PanelSpec("file-descriptors", "Open file descriptors and threads",
                  "Open file descriptors (process_open_file_descriptors) and threads "
                  "(process_threads) of each process.", "short",
                  (target(f"max by (job, instance) "
                          f"({sel('process_open_file_descriptors', INSTANCE)})", "fds " + who),
                   target(f"max by (job, instance) ({sel('process_threads', INSTANCE)})",
                          "threads " + who)),
                  width=8, min=0),
        PanelSpec("disk-used", "Disk used",
                  "Used fraction of the filesystem holding each watched path "
                  "(system_filesystem_utilization_ratio); the alert fires above "
                  f"{pct(t.disk_used_ratio)}.", "percentunit",
                  (target(f"max by (instance, path) "
                          f"({sel('system_filesystem_utilization_ratio', INSTANCE)})",
                          "{{instance}} {{path}}"),),
                  width=12, min=0, max=1,
                  thresholds=((t.disk_used_ratio - 0.1, "orange"), (t.disk_used_ratio, "red"))),
        PanelSpec("event-loop-lag", "Event-loop lag p50 / p99",
                  "Delay of the asyncio event loop in running a timer, from the raw buckets "
                  "of python_event_loop_lag_seconds with exemplars: a busy or blocked loop "
                  "delays every request of that process.", "s",
                  (target(raw_quantile("python_event_loop_lag_seconds", "0.5", "job, instance",
                                       INSTANCE), "p50 " + who, exemplar=True),
                   target(raw_quantile("python_event_loop_lag_seconds", "0.99", "job, instance",
                                       INSTANCE), "p99 " + who, exemplar=True)),
                  width=12, min=0),
    ))
    return DashboardSpec(
        "promkit-resources", "resources.json", "promkit / Resources",
        "Memory, CPU, file descriptors and threads of each process, disk use, event-loop lag.",
        variables(config, "service", "instance"), (row,), annotations=(FIRING,))


# -- promkit self-monitoring -------------------------------------------------------------------


def self_monitoring_dashboard(config: Config) -> DashboardSpec:
    who = "{{job}} {{instance}}"
    row = RowSpec("promkit and scrapes", (
        PanelSpec("instrumentation-errors", "Instrumentation errors by cause",
                  "Failures inside promkit's recording per second, swallowed so the app never "
                  "saw them (promkit_instrumentation_errors_total); the process log says why, "
                  "once per cause.", "cps",
                  (target(f"sum by (instance, cause) "
                          f"(rate({sel('promkit_instrumentation_errors_total', INSTANCE)}{RATE}))",
                          "{{instance}} {{cause}}"),),
                  width=12, min=0),
        PanelSpec("series-overflow", "Recordings folded into overflow series",
                  "Recordings per second folded into a metric's __overflow__ series because "
                  "it hit its series limit (promkit_series_overflow_total): a label takes "
                  "unbounded values.", "cps",
                  (target(f"sum by (instance, metric) "
                          f"(rate({sel('promkit_series_overflow_total', INSTANCE)}{RATE}))",
                          "{{instance}} {{metric}}"),),
                  width=12, min=0),
        PanelSpec("exposition-duration", "/metrics render time p99",
                  "Time to render a /metrics exposition by format, p99 from the raw buckets "
                  "of promkit_exposition_duration_seconds with exemplars.", "s",
                  (target(raw_quantile("promkit_exposition_duration_seconds", "0.99",
                                       "instance, format", INSTANCE),
                          "{{instance}} {{format}}", exemplar=True),),
                  width=8, min=0),
        PanelSpec("scrape-duration", "Scrape duration",
                  "How long Prometheus took to scrape each target "
                  "(scrape_duration_seconds, written by Prometheus).", "s",
                  (target(sel("scrape_duration_seconds", INSTANCE), who),),
                  width=8, min=0),
        PanelSpec("targets-up", "Targets up",
                  "1 when Prometheus's last scrape of the target succeeded, 0 when it failed "
                  "(up); TargetDown fires after 2 minutes at 0.", "bool_yes_no",
                  (target(sel("up", INSTANCE), who, instant=True),),
                  kind="stat", width=8, base_color="red",
                  thresholds=((0.5, "green"),)),
    ))
    return DashboardSpec(
        "promkit-self", "promkit-self.json", "promkit / Self-monitoring",
        "promkit's own health: swallowed instrumentation errors, series overflow, /metrics "
        "render time, and Prometheus's view of the scrapes.",
        variables(config, "service", "instance"), (row,), annotations=(FIRING,))
