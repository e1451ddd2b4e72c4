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
    assert set(alert["annotations"]) >= {"summary", "description", "runbook_url"}
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
                        "runbook_url": "https://rb.example/PromkitLiveTest.md"},
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
    assert "Runbook: https://rb.example/PromkitLiveTest.md" in embed["description"]
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
                        "runbook_url": "https://rb.example/QueueDepthHigh.md"},
    }])
    slack = hook.wait_for(lambda r: r.path == "/slack", timeout=15).json()
    (attachment,) = slack["attachments"]
    assert attachment["title"] == "[FIRING:1] QueueDepthHigh (demo, warning)"
    assert "queue jobs is deep" in attachment["text"]
    assert "Runbook: https://rb.example/QueueDepthHigh.md" in attachment["text"]
    assert attachment["color"] in ("warning", "danger", "good")
    time.sleep(1.5)  # a group interval: anything misrouted would have arrived by now
    assert [r.path for r in hook.requests()] == ["/slack"]


def test_inhibition_live(tmp_path: Path, hook: WebhookReceiver,
                         alertmanager: Callable[..., AlertmanagerServer]) -> None:
    """A down target silences its instance's other alerts; critical silences same-name warning."""
    am = _start(alertmanager, tmp_path, hook)
    instance = {"service": "demo", "instance": "127.0.0.1:8000"}
    annotations = {"summary": "s", "description": "d", "runbook_url": "https://rb.example/r"}
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


# -- one incident, one page ------------------------------------------------------------------

INCIDENT = {  # what 30% of requests failing fires after 45 minutes, and at which severity
    ("HTTPErrorRatioHigh", ""): "warning",
    ("HTTP5xxRateHigh", ""): "warning",
    ("SLOBurnRatePage", "api-availability"): "critical",
    ("SLOBurnRateTicket", "api-availability"): "warning",
}


def _incident_series(config: Config) -> list[dict[str, str]]:
    """60 requests/s, 30% answered 500, for an hour; jobs and auth healthy, all requests fast."""
    from promkit.instrument.catalog import STANDARD_CATALOG
    from promkit.tools.generate._promql import bucket_le

    svc = config.service
    route = f'service="{svc}", http_request_method="GET", http_route="/api/items"'
    ok = f'{route}, http_response_status_code="200", http_response_status_class="2xx"'
    bad = f'{route}, http_response_status_code="500", http_response_status_class="5xx"'
    http = "http_server_request_duration_seconds"
    series = [
        {"series": f"{http}_count{{{ok}}}", "values": "0+2520x60"},   # 42/s good
        {"series": f"{http}_count{{{bad}}}", "values": "0+1080x60"},  # 18/s bad: 30%
        {"series": f'up{{service="{svc}", job="demo-api", instance="127.0.0.1:8000"}}',
         "values": "1x60"},
        {"series": f'jobs_finished_total{{service="{svc}", queue="jobs", job_type="ocr", '
                   'outcome="success", error_code=""}', "values": "0+60x60"},
        {"series": f'auth_attempts_total{{service="{svc}", auth_type="password", '
                   'outcome="success"}', "values": "0+60x60"},
    ]
    for labels, per_minute in ((ok, 2520), (bad, 1080)):  # every request in the first bucket
        for bound in (*(STANDARD_CATALOG[http].buckets or ()), "+Inf"):
            le = bound if bound == "+Inf" else bucket_le(float(bound))
            series.append({"series": f'{http}_bucket{{{labels}, le="{le}"}}',
                           "values": f"0+{per_minute}x60"})
    return series


def test_an_incident_pages_once(tmp_path: Path, hook: WebhookReceiver,
                                alertmanager: Callable[..., AlertmanagerServer]) -> None:
    """30% of requests fail: promtool shows which alerts the demo's generated rules fire; a real
    Alertmanager with the demo's generated routing gets them in the order they fire (the
    symptom alerts minutes before the page) and the paging receiver is notified once.

    Before: HTTPErrorRatioHigh, HTTP5xxRateHigh, SLOBurnRatePage1h and SLOBurnRatePage6h were
    four critical groups: 4 pages on ntfy and 8 notifications with the default receiver.
    """
    import dataclasses
    import shutil
    import subprocess

    from demo.settings import CONFIG_PATH as DEMO_CONFIG
    from promkit.tools.generate.config import Receiver, load_config
    from promkit.tools.generate.rules import alert_rules, all_rule_groups

    demo = load_config(DEMO_CONFIG)
    rules = alert_rules(demo)
    by_name = {(r["alert"], r["labels"].get("slo", "")): r for r in rules}

    # 1. What fires: promtool evaluates the generated rules over the incident's series.
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package 'prometheus')")
    files = []
    for name, groups in all_rule_groups(demo).items():
        (tmp_path / name).write_text(yaml.safe_dump({"groups": groups}))
        files.append(name)
    expected = []
    for key, severity in INCIDENT.items():
        labels = {**by_name[key]["labels"], "alertname": key[0], "alertstate": "firing"}
        assert labels["severity"] == severity, key
        expected.append({"labels": "ALERTS{" + ", ".join(
            f'{k}="{v}"' for k, v in sorted(labels.items())) + "}", "value": 1})
    (tmp_path / "incident_test.yml").write_text(yaml.safe_dump({
        "rule_files": files, "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": _incident_series(demo),
                   "promql_expr_test": [{"expr": 'ALERTS{alertstate="firing"}',
                                         "eval_time": "45m", "exp_samples": expected}]}]}))
    result = subprocess.run([promtool, "test", "rules", str(tmp_path / "incident_test.yml")],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr

    # 2. Where it goes: the demo's routing and inhibition, its receivers pointed at `hook`.
    config = dataclasses.replace(demo, receivers=(
        Receiver("default", "webhook", url=hook.url("/default")),
        Receiver("ntfy", "ntfy", url=hook.url("/ntfy"))))
    path = write_runtime_alertmanager(config, tmp_path / "run" / "am.yml", rules=rules,
                                      timing=FAST)
    am = alertmanager(path.read_text())

    def alert(key: tuple[str, str]) -> dict[str, Any]:
        rule = by_name[key]
        return {"labels": {"alertname": key[0], **rule["labels"]},
                "annotations": {"summary": key[0], "description": rule["expr"][:60]}}

    def names(request: Any) -> list[str]:
        return sorted(a["labels"]["alertname"] for a in request.json()["alerts"])

    symptoms = [k for k in INCIDENT if k[1] == ""]
    # The symptom alerts fire first (5m ratio above 2% for 5m, ~5.5 min in): warnings.
    am.post_alerts([alert(k) for k in symptoms])
    for key in symptoms:
        hook.wait_for(lambda r, k=key: r.path == "/default" and names(r) == [k[0]], timeout=15)
    # Then the page (the 1h window crosses 3.36% after ~7 min); Prometheus keeps re-sending
    # every firing alert.
    page_key = ("SLOBurnRatePage", "api-availability")
    am.post_alerts([alert(k) for k in (*symptoms, page_key)])
    page = hook.wait_for(lambda r: r.path == "/ntfy", timeout=15)
    assert names(page) == ["SLOBurnRatePage"]
    assert page.json()["alerts"][0]["labels"]["slo"] == "api-availability"
    hook.wait_for(lambda r: r.path == "/default" and names(r) == ["SLOBurnRatePage"],
                  timeout=15)

    def suppressed(*keys: tuple[str, str]) -> None:
        def check() -> bool:
            states = [a["status"] for k in keys for a in am.alerts(alertname=k[0])]
            return len(states) == len(keys) and all(
                s["state"] == "suppressed" and s["inhibitedBy"] for s in states)

        deadline = time.monotonic() + 15
        while not check():
            assert time.monotonic() < deadline, [a["status"] for a in am.alerts()]
            time.sleep(0.25)

    suppressed(*symptoms)
    # The ticket fires last (the 1d window crosses 0.7% after ~34 min).
    am.post_alerts([alert(k) for k in INCIDENT])
    suppressed(*symptoms, ("SLOBurnRateTicket", "api-availability"))
    # Absence needs a window: three group intervals (1s) for anything else to arrive.
    time.sleep(3)
    assert [names(r) for r in hook.requests("/ntfy")] == [["SLOBurnRatePage"]]
    assert sorted(n for r in hook.requests("/default") for n in names(r)) == [
        "HTTP5xxRateHigh", "HTTPErrorRatioHigh", "SLOBurnRatePage"]
