"""What the stage-timer tests share: the series names, a test exception, a sample reader."""

DURATION = "job_stage_duration_seconds"
CPU = "job_stage_cpu_seconds_total"
FAILURES = "job_stage_failures_total"


class Boom(Exception):
    pass


def sample(registry, name, **labels):
    return registry.collector_registry.get_sample_value(name, labels)
