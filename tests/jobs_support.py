"""What tests/test_jobs.py and tests/test_job_run.py share: metric reads, a fresh
process state per test, the tracker they use, and the JSON boundary of a real queue."""

import json

import pytest

from promkit.instrument import _job_run
from promkit.instrument.jobs import JobTracker


def sample(registry, name, **labels):
    return registry.collector_registry.get_sample_value(name, labels)


def errors(registry, cause):
    return sample(registry, "promkit_instrumentation_errors_total", cause=cause)


@pytest.fixture(autouse=True)
def fresh_process_state(monkeypatch):
    """Each test sees a process whose first job is still to come."""
    monkeypatch.setattr(_job_run, "_process", _job_run._ProcessState())


@pytest.fixture
def tracker(registry):
    return JobTracker(registry, queue="tts", worker_type="gpu")


def over_the_wire(payload):
    """The process boundary of a real queue: JSON out, JSON in."""
    return json.loads(json.dumps(payload))
