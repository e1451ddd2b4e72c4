"""Live alert routing: real Prometheus -> real Alertmanager -> local receivers.

The Alertmanager config is the generator's (``write_runtime_alertmanager``, the
form Debian's Alertmanager 0.25 loads: Slack's ``api_url_file`` read natively,
the other URLs inlined from their files) with ``group_wait``/``group_interval``
shortened. Every receiver type points at one local HTTP receiver on its own
path, through ``url_file`` files as a deployment would.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from promkit.tools.generate.alertmanager import write_runtime_alertmanager
from promkit.tools.generate.config import Config, config_from_mapping

from ._servers import AlertmanagerServer, PrometheusServer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "apps"))
from webhook_receiver import WebhookReceiver

FAST = {"group_wait": "0s", "group_interval": "1s", "repeat_interval": "1h"}
RULES = [
    {"alert": "DemoTargetDown", "expr": 'up{service="demo"} == 0',
     "labels": {"severity": "critical", "service": "demo"}},
]


@pytest.fixture
def hook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


def _config(tmp_path: Path, hook: WebhookReceiver) -> Config:
    files = {}
    for name, path in (("ntfy", "/ntfy/promkit-alerts"), ("discord", "/discord"),
                       ("slack", "/slack")):
        files[name] = tmp_path / f"{name}.url"
        files[name].write_text(hook.url(path) + "\n")
    return config_from_mapping({
        "service": "demo",
        "targets": [{"job": "demo-api", "targets": ["127.0.0.1:8000"]}],
        "receivers": [
            {"name": "default", "type": "webhook", "url": hook.url("/webhook")},
            {"name": "ntfy", "type": "ntfy", "url_file": str(files["ntfy"])},
            {"name": "discord", "type": "discord", "url_file": str(files["discord"])},
            {"name": "slack", "type": "slack", "url_file": str(files["slack"])},
        ],
        "routes": [
            {"match": {"severity": "critical"}, "receiver": "ntfy", "continue": True},
            {"match": {"severity": "critical"}, "receiver": "discord", "continue": True},
            {"match": {"severity": "warning"}, "receiver": "slack"},
            {"receiver": "default"},
        ],
    }, source="test")


def _start(alertmanager: Callable[..., AlertmanagerServer], tmp_path: Path,
           hook: WebhookReceiver) -> AlertmanagerServer:
    path = write_runtime_alertmanager(_config(tmp_path, hook), tmp_path / "run" / "am.yml",
                                      rules=RULES, timing=FAST)
    return alertmanager(path.read_text())


def _assert_alertmanager_webhook(body: dict[str, Any], alertname: str, receiver: str) -> None:
    assert body["version"] == "4"
    assert body["status"] == "firing"
    assert body["receiver"] == receiver
    assert body["groupLabels"] == {"alertname": alertname, "service": "demo"}
    assert body["commonLabels"]["alertname"] == alertname
    assert isinstance(body["groupKey"], str) and body["externalURL"].startswith("http")
    (alert,) = body["alerts"]
    assert alert["status"] == "firing"
    assert alert["labels"]["service"] == "demo"
    assert set(alert["annotations"]) >= {"summary", "description", "runbook"}
    assert {"startsAt", "endsAt", "generatorURL", "fingerprint"} <= set(alert)


def test_prometheus_rule_reaches_every_receiver_type(
        tmp_path: Path, hook: WebhookReceiver, alertmanager: Callable[..., AlertmanagerServer],
        prometheus: Callable[..., PrometheusServer]) -> None:
    """An always-true critical rule fires in Prometheus and lands on ntfy, Discord and webhook."""
    started = time.monotonic()
    am = _start(alertmanager, tmp_path, hook)
    rule_file = tmp_path / "rules.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "live", "rules": [{
        "alert": "PromkitLiveTest", "expr": "vector(1)",
        "labels": {"severity": "critical", "service": "demo"},
        "annotations": {"summary": "live test", "description": "always true",
                        "runbook": "docs/runbooks/PromkitLiveTest.md"},
    }]}]}))
    prometheus(rule_files=[rule_file], alertmanagers=[am.address], evaluation_interval="1s")

    body = hook.wait_for(lambda r: r.path == "/webhook", timeout=40).json()
    _assert_alertmanager_webhook(body, "PromkitLiveTest", "default")
    assert body["alerts"][0]["generatorURL"].startswith("http://")  # made by Prometheus

    ntfy = hook.wait_for(lambda r: r.path == "/ntfy/promkit-alerts", timeout=10)
    assert ntfy.query == {"template": ["alertmanager"]}  # ntfy's built-in template renders it
    _assert_alertmanager_webhook(ntfy.json(), "PromkitLiveTest", "ntfy")

    discord = hook.wait_for(lambda r: r.path == "/discord", timeout=10).json()
    (embed,) = discord["embeds"]
    assert embed["title"] == "[FIRING:1] PromkitLiveTest (demo, critical)"
    assert "live test" in embed["description"]
    assert "docs/runbooks/PromkitLiveTest.md" in embed["description"]
    assert isinstance(embed["color"], int)

    assert not hook.requests("/slack"), "a critical alert must not reach the warning receiver"
    assert time.monotonic() - started < 45


def test_posted_warning_goes_to_slack_only(
        tmp_path: Path, hook: WebhookReceiver,
        alertmanager: Callable[..., AlertmanagerServer]) -> None:
    am = _start(alertmanager, tmp_path, hook)
    am.post_alerts([{
        "labels": {"alertname": "QueueDepthHigh", "service": "demo", "severity": "warning",
                   "queue": "jobs"},
        "annotations": {"summary": "queue jobs is deep", "description": "depth 42 > 30",
                        "runbook": "docs/runbooks/QueueDepthHigh.md"},
    }])
    slack = hook.wait_for(lambda r: r.path == "/slack", timeout=15).json()
    (attachment,) = slack["attachments"]
    assert attachment["title"] == "[FIRING:1] QueueDepthHigh (demo, warning)"
    assert "queue jobs is deep" in attachment["text"]
    assert "docs/runbooks/QueueDepthHigh.md" in attachment["text"]
    assert attachment["color"] in ("warning", "danger", "good")
    time.sleep(1.5)  # a group interval: anything misrouted would have arrived by now
    assert [r.path for r in hook.requests()] == ["/slack"]


def test_inhibition_live(tmp_path: Path, hook: WebhookReceiver,
                         alertmanager: Callable[..., AlertmanagerServer]) -> None:
    """A down target silences its instance's other alerts; critical silences same-name warning."""
    am = _start(alertmanager, tmp_path, hook)
    instance = {"service": "demo", "instance": "127.0.0.1:8000"}
    annotations = {"summary": "s", "description": "d", "runbook": "r"}
    am.post_alerts([
        {"labels": {"alertname": "DemoTargetDown", "severity": "critical", **instance},
         "annotations": annotations},
        {"labels": {"alertname": "DiskUsageHigh", "severity": "warning", **instance},
         "annotations": annotations},
        {"labels": {"alertname": "DiskUsageHigh", "severity": "warning", "service": "demo",
                    "instance": "10.0.0.9:8000"}, "annotations": annotations},
        {"labels": {"alertname": "HTTPErrorRatioHigh", "severity": "critical",
                    "service": "demo"}, "annotations": annotations},
        {"labels": {"alertname": "HTTPErrorRatioHigh", "severity": "warning",
                    "service": "demo"}, "annotations": annotations},
    ])

    def state(alertname: str, instance: str | None = None) -> str:
        filters = {"alertname": alertname} | ({"instance": instance} if instance else {})
        alerts = am.wait_for_alerts(timeout=10, **filters)
        return " ".join(sorted(a["status"]["state"] for a in alerts))

    deadline = time.monotonic() + 15
    while state("DiskUsageHigh", "127.0.0.1:8000") != "suppressed":
        assert time.monotonic() < deadline, "a down target did not inhibit its instance"
        time.sleep(0.25)
    assert state("DiskUsageHigh", "10.0.0.9:8000") == "active"
    assert state("HTTPErrorRatioHigh") == "active suppressed"
    assert state("DemoTargetDown") == "active"
    # Inhibited alerts reach no receiver; the disk alert of the other instance goes to Slack.
    hook.wait_for(lambda r: r.path == "/slack", timeout=10)
    time.sleep(1.5)
    for request in hook.requests():
        for alert in request.json().get("alerts", []):
            assert alert["labels"].get("instance") != "127.0.0.1:8000" or (
                alert["labels"]["alertname"] == "DemoTargetDown")
