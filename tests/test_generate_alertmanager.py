"""The generated Alertmanager config: shape, secrets, amtool check-config and routes test."""

from __future__ import annotations

import dataclasses
import re
import shutil
import stat
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from demo.settings import CONFIG_PATH as DEMO_CONFIG
from promkit.tools.generate.alertmanager import (
    ALERTMANAGER_PATH,
    SEVERITY_TIMING,
    AlertmanagerError,
    alertmanager_config,
    inline_secrets,
    ntfy_url,
    render_alertmanager,
    target_down_alerts,
    write_alertmanager,
    write_runtime_alertmanager,
)
from promkit.tools.generate.config import Config, config_from_mapping, load_config

REPO = Path(__file__).resolve().parents[1]
SECRET = "https://discord.example/api/webhooks/1/s3cr3t-t0ken"

# Synthetic alerts, for tests that must not depend on the rule generator's names.
RULES: list[dict[str, Any]] = [
    {"alert": "DemoTargetDown", "expr": 'up{service="demo"} == 0',
     "labels": {"severity": "critical", "service": "demo"}},
    {"alert": "HighErrorRatio", "expr": "x > 0.02",
     "labels": {"severity": "critical", "service": "demo"}},
    {"alert": "QueueDepthHigh", "expr": "y > 30",
     "labels": {"severity": "warning", "service": "demo"}},
    {"alert": "CpuBudgetBurn", "expr": "z > 1", "labels": {"severity": "info", "service": "demo"}},
]


def _all_types_config(tmp_path: Path) -> Config:
    """Every receiver type, secrets from files and env, severity-specific routes."""
    for name in ("ntfy", "discord", "slack"):
        (tmp_path / f"{name}.url").write_text(f"http://127.0.0.1:9/{name}\n")
    return config_from_mapping({
        "service": "demo",
        "targets": [{"job": "demo-api", "targets": ["127.0.0.1:8000"]}],
        "receivers": [
            {"name": "default", "type": "webhook", "url": "http://127.0.0.1:9099/alerts"},
            {"name": "ntfy", "type": "ntfy", "url_file": str(tmp_path / "ntfy.url")},
            {"name": "discord", "type": "discord", "url_file": str(tmp_path / "discord.url")},
            {"name": "slack", "type": "slack", "url_file": str(tmp_path / "slack.url")},
            {"name": "hook", "type": "webhook", "url_env": "PROMKIT_TEST_HOOK_URL"},
        ],
        "routes": [
            {"match": {"severity": "critical"}, "receiver": "ntfy", "continue": True},
            {"match": {"severity": "critical"}, "receiver": "discord", "continue": True},
            {"match": {"severity": "warning"}, "receiver": "slack"},
            {"match": {"severity": "info", "alertname": "CpuBudgetBurn"}, "receiver": "hook"},
            {"receiver": "default"},
        ],
    }, source="test")


def _demo_config() -> Config:
    return load_config(DEMO_CONFIG)


def _alert_rules(config: Config) -> list[dict[str, Any]]:
    rules = pytest.importorskip("promkit.tools.generate.rules")
    return list(rules.alert_rules(config))


def expected_receivers(config: Config, labels: Mapping[str, str]) -> list[str]:
    """The receivers the project config's routes name for ``labels`` (an independent model)."""
    out: list[str] = []
    for route in config.routes:
        if all(labels.get(k) == v for k, v in route.match.items()):
            out.append(route.receiver)
            if not route.continue_:
                break
    return out or [config.routes[-1].receiver if config.routes else config.receivers[0].name]


def _amtool() -> str:
    path = shutil.which("amtool") or ("/usr/bin/amtool" if Path("/usr/bin/amtool").exists()
                                       else None)
    if path is None:
        pytest.skip("amtool is not installed (Debian package 'prometheus-alertmanager')")
    return path


def _amtool_version(amtool: str) -> tuple[int, int]:
    out = subprocess.run([amtool, "--version"], capture_output=True, text=True, check=False)
    match = re.search(r"version (\d+)\.(\d+)", out.stdout + out.stderr)
    assert match, out
    return int(match[1]), int(match[2])


def _check_config(amtool: str, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([amtool, "check-config", str(path)], capture_output=True, text=True,
                          check=False, timeout=30)


def _routes_test(amtool: str, path: Path, labels: Mapping[str, str]) -> list[str]:
    out = subprocess.run(
        [amtool, "config", "routes", "test", f"--config.file={path}",
         *(f"{k}={v}" for k, v in sorted(labels.items()))],
        capture_output=True, text=True, check=True, timeout=30)
    return out.stdout.strip().split(",")


# -- shape -----------------------------------------------------------------------------------


def test_route_tree_by_service_then_severity(tmp_path: Path) -> None:
    config = _all_types_config(tmp_path)
    am = alertmanager_config(config, rules=RULES)
    root = am["route"]
    assert root["receiver"] == "default"
    assert root["group_by"] == ["alertname", "service"]
    (service,) = root["routes"]
    assert service["matchers"] == ['service="demo"']
    by_severity = {b["matchers"][0]: b for b in service["routes"][:3]}
    for severity, timing in SEVERITY_TIMING.items():
        branch = by_severity[f'severity="{severity}"']
        assert {k: branch[k] for k in timing} == dict(timing)
        # Only the user's routes that can match this severity sit under it.
        for child in branch["routes"]:
            assert all(m == f'severity="{severity}"' for m in child.get("matchers", [])
                       if m.startswith("severity="))
    assert SEVERITY_TIMING["critical"]["repeat_interval"] == "1h"


def test_inhibition_target_down_and_severity() -> None:
    am = alertmanager_config(_demo_config(), rules=RULES)
    rules = am["inhibit_rules"]
    assert rules[0] == {"source_matchers": ['alertname=~"DemoTargetDown"'],
                        "target_matchers": ['alertname!~"DemoTargetDown"'],
                        "equal": ["service", "instance"]}
    assert {"source_matchers": ['severity="critical"'],
            "target_matchers": ['severity=~"warning|info"'],
            "equal": ["alertname", "service"]} in rules


def test_inhibition_slo_page_silences_tickets_and_absent() -> None:
    rules = [*RULES, {"alert": "SLOMetricAbsent", "expr": "absent(x_total)",
                      "labels": {"severity": "warning", "service": "demo", "slo": "a"}}]
    inhibit = alertmanager_config(_demo_config(), rules=rules)["inhibit_rules"]
    assert {"source_matchers": ['alertname=~"DemoTargetDown"'],
            "target_matchers": ['alertname=~"SLOMetricAbsent"'], "equal": ["service"]} in inhibit
    assert {"source_matchers": ['severity="critical"', 'slo=~".+"'],
            "target_matchers": ['severity=~"warning|info"', 'slo=~".+"'],
            "equal": ["service", "slo"]} in inhibit


def test_target_down_alerts_found_by_up_series_or_name() -> None:
    rules = [{"alert": "A", "expr": "up == 0"}, {"alert": "B", "expr": 'up{job="x"} < 1'},
             {"alert": "C", "expr": "backup_age > 1"}, {"alert": "WorkerTargetDown", "expr": "1"},
             {"alert": "D", "expr": "rate(setup_total[5m]) > 0"}]
    assert target_down_alerts(rules) == ["A", "B", "WorkerTargetDown"]


def test_timing_override_reaches_every_route(tmp_path: Path) -> None:
    timing = {"group_wait": "0s", "group_interval": "1s", "repeat_interval": "1m"}
    am = alertmanager_config(_all_types_config(tmp_path), rules=RULES, timing=timing)

    def walk(route: Mapping[str, Any]) -> None:
        for key, value in timing.items():
            assert route.get(key, value) == value
        for child in route.get("routes", []):
            walk(child)

    walk(am["route"])
    assert am["route"]["group_wait"] == "0s"


def test_receivers_per_type(tmp_path: Path) -> None:
    am = alertmanager_config(_all_types_config(tmp_path), rules=RULES)
    receivers = {r["name"]: r for r in am["receivers"]}
    assert receivers["default"]["webhook_configs"][0]["url"] == "http://127.0.0.1:9099/alerts"
    assert receivers["ntfy"]["webhook_configs"][0]["url_file"] == str(tmp_path / "ntfy.url")
    assert receivers["discord"]["discord_configs"][0]["webhook_url_file"].endswith("discord.url")
    slack = receivers["slack"]["slack_configs"][0]
    assert slack["api_url_file"].endswith("slack.url")
    assert "{{ .Annotations.runbook_url }}" in slack["text"]
    assert receivers["hook"]["webhook_configs"][0]["url_file"] == "/etc/promkit/secrets/hook.url"
    assert all(next(iter(v))["send_resolved"] is True
               for r in am["receivers"] for k, v in r.items() if k.endswith("_configs"))


def test_output_is_deterministic(tmp_path: Path) -> None:
    config = _all_types_config(tmp_path)
    assert render_alertmanager(config, rules=RULES) == render_alertmanager(config, rules=RULES)


# -- secrets ---------------------------------------------------------------------------------


def test_no_secret_in_generated_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "d.url").write_text(SECRET)
    monkeypatch.setenv("PROMKIT_TEST_SLACK", "https://hooks.slack.example/T/B/env-s3cr3t")
    config = config_from_mapping({
        "service": "demo", "targets": [{"job": "a", "targets": ["127.0.0.1:1"]}],
        "receivers": [{"name": "d", "type": "discord", "url_file": str(tmp_path / "d.url")},
                      {"name": "s", "type": "slack", "url_env": "PROMKIT_TEST_SLACK"}],
    })
    path = write_alertmanager(config, tmp_path / "out", rules=RULES)
    text = path.read_text()
    assert path == tmp_path / "out" / ALERTMANAGER_PATH
    assert "s3cr3t" not in text
    assert str(tmp_path / "d.url") in text
    assert "api_url_file: /etc/promkit/secrets/s.url" in text
    assert "$PROMKIT_TEST_SLACK" in text  # documented in the header: where the value goes


@pytest.mark.parametrize("kind", ["discord", "slack"])
def test_inline_token_url_refused(kind: str) -> None:
    config = config_from_mapping({
        "service": "demo", "targets": [{"job": "a", "targets": ["127.0.0.1:1"]}],
        "receivers": [{"name": "x", "type": kind, "url": "https://chat.example/hooks/T0KEN"}],
    })
    with pytest.raises(AlertmanagerError, match="url_file or url_env"):
        alertmanager_config(config, rules=RULES)


def test_runtime_copy_inlines_secrets_owner_only(tmp_path: Path) -> None:
    config = _all_types_config(tmp_path)
    path = write_runtime_alertmanager(config, tmp_path / "run" / "am.yml", rules=RULES,
                                      env={"PROMKIT_TEST_HOOK_URL": "http://127.0.0.1:9/hook"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = yaml.safe_load(path.read_text())
    receivers = {r["name"]: r for r in data["receivers"]}
    assert receivers["ntfy"]["webhook_configs"][0]["url"] == (
        "http://127.0.0.1:9/ntfy?template=alertmanager")
    assert receivers["discord"]["discord_configs"][0]["webhook_url"] == (
        "http://127.0.0.1:9/discord")
    # Alertmanager 0.25 reads Slack's api_url_file itself: it stays a file.
    assert "api_url_file" in receivers["slack"]["slack_configs"][0]
    assert receivers["hook"]["webhook_configs"][0]["url"] == "http://127.0.0.1:9/hook"
    everything = inline_secrets(alertmanager_config(config, rules=RULES), config,
                                env={"PROMKIT_TEST_HOOK_URL": "x"}, native_files=())
    assert "api_url" in everything["receivers"][3]["slack_configs"][0]


def test_runtime_copy_reports_missing_env(tmp_path: Path) -> None:
    with pytest.raises(AlertmanagerError, match="PROMKIT_TEST_HOOK_URL is not set"):
        write_runtime_alertmanager(_all_types_config(tmp_path), tmp_path / "am.yml",
                                   rules=RULES, env={})


def test_ntfy_url_adds_template_once() -> None:
    assert ntfy_url("https://ntfy.sh/topic") == "https://ntfy.sh/topic?template=alertmanager"
    assert ntfy_url("https://ntfy.sh/t?template=alertmanager") == (
        "https://ntfy.sh/t?template=alertmanager")
    assert ntfy_url("https://ntfy.sh/t?tpl=yes&m=x") == "https://ntfy.sh/t?tpl=yes&m=x"


# -- real amtool -----------------------------------------------------------------------------


def _runtime_copy(config: Config, tmp_path: Path, rules: list[dict[str, Any]]) -> Path:
    """What an Alertmanager 0.25 loads: URL files that exist, inlined where 0.25 needs it."""
    dummy: dict[str, Any] = {"service": config.service, "targets": [
        {"job": t.job, "targets": list(t.targets)} for t in config.targets], "receivers": [],
        "routes": []}
    for r in config.receivers:
        entry: dict[str, Any] = {"name": r.name, "type": r.type}
        if r.url is not None:
            entry["url"] = r.url
        else:
            file = tmp_path / f"{r.name}.url"
            file.write_text(f"http://127.0.0.1:9/{r.name}\n")
            entry["url_file"] = str(file)
        dummy["receivers"].append(entry)
    for route in config.routes:
        dummy["routes"].append({"receiver": route.receiver, "match": dict(route.match),
                                "continue": route.continue_})
    am = alertmanager_config(config, rules=rules)
    runtime = inline_secrets(am, config_from_mapping(dummy), env={})
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(runtime, sort_keys=False))
    return path


def test_amtool_check_config_demo(tmp_path: Path) -> None:
    """The demo's generated file, as committed, loads in the installed Alertmanager."""
    amtool = _amtool()
    config = _demo_config()
    assert config.alertmanager is not None and config.alertmanager.version == "0.25"
    assert _amtool_version(amtool) >= (0, 25)
    generated = write_alertmanager(config, tmp_path / "gen", rules=_alert_rules(config))
    assert generated.read_text() == (REPO / ALERTMANAGER_PATH).read_text()
    result = _check_config(amtool, REPO / ALERTMANAGER_PATH)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_generate_writes_what_the_installed_alertmanager_reads(tmp_path: Path) -> None:
    """Without alertmanager.version, `promkit generate` writes for the installed amtool."""
    from promkit.tools.generate import generate

    amtool = _amtool()
    (tmp_path / "slack.url").write_text("http://127.0.0.1:9/slack\n")
    config = config_from_mapping({
        "service": "demo", "targets": [{"job": "a", "targets": ["127.0.0.1:1"]}],
        "receivers": [
            {"name": "default", "type": "webhook", "url": "http://127.0.0.1:9099/alerts"},
            {"name": "pager", "type": "ntfy", "url": "http://127.0.0.1:9099/ntfy"},
            {"name": "chat", "type": "discord", "url": "http://127.0.0.1:9099/discord"},
            {"name": "team", "type": "slack", "url_file": str(tmp_path / "slack.url")},
        ],
        "routes": [{"match": {"severity": "critical"}, "receiver": "pager", "continue": True},
                   {"receiver": "default"}],
    }, source="test")
    generate(config, tmp_path / "out", dashboards=False)
    path = tmp_path / "out" / ALERTMANAGER_PATH
    major, minor = _amtool_version(amtool)
    assert f"# Written for Alertmanager {major}.{minor} and later (the installed amtool" in (
        path.read_text())
    result = _check_config(amtool, path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_file_url_the_target_version_cannot_read_is_a_config_error(tmp_path: Path) -> None:
    """0.25 reads no webhook url_file: the error names the field and the ways out."""
    from promkit.tools.generate import ConfigError, generate

    config = _all_types_config(tmp_path)
    with pytest.raises(ConfigError) as info:
        alertmanager_config(config, rules=RULES, version=(0, 25))
    assert info.value.path == "receivers[1].url_file"
    assert "Alertmanager 0.25 cannot read the URL of ntfy receiver 'ntfy' from a file " \
           "(url_file came in 0.26)" in info.value.problem
    assert "write_runtime_alertmanager" in info.value.problem
    only_env = dataclasses.replace(config, receivers=(config.receivers[0],
                                                      *config.receivers[3:]), routes=())
    with pytest.raises(ConfigError, match=r"receivers\[2\]\.url_env: .* webhook receiver "
                                          "'hook'"):
        alertmanager_config(only_env, rules=RULES, version=(0, 25))
    # The same config written for 0.26 keeps the files.
    am = alertmanager_config(config, rules=RULES, version=(0, 26))
    assert am["receivers"][1]["webhook_configs"][0]["url_file"].endswith("ntfy.url")
    # The CLI flag wins over the config and the installed amtool.
    generate(config, tmp_path / "new", dashboards=False,
             alertmanager_target=((0, 27), "--alertmanager-version"))
    assert "# Written for Alertmanager 0.27 and later (--alertmanager-version)" in (
        tmp_path / "new" / ALERTMANAGER_PATH).read_text()


def test_amtool_check_config_all_receiver_types(tmp_path: Path) -> None:
    amtool = _amtool()
    config = _all_types_config(tmp_path)
    path = write_runtime_alertmanager(config, tmp_path / "am.yml", rules=RULES,
                                      env={"PROMKIT_TEST_HOOK_URL": "http://127.0.0.1:9/h"})
    result = _check_config(amtool, path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"- 5 receivers", result.stdout), result.stdout
    assert re.search(r"- 4 inhibit rules", result.stdout), result.stdout


def test_amtool_rejects_webhook_url_file_on_0_25(tmp_path: Path) -> None:
    """Why the runtime copy exists: keep this honest if Debian ships a newer Alertmanager."""
    amtool = _amtool()
    if _amtool_version(amtool) >= (0, 26):
        pytest.skip("this Alertmanager reads url_file/webhook_url_file itself")
    config = _all_types_config(tmp_path)
    path = write_alertmanager(config, tmp_path, rules=RULES)
    result = _check_config(amtool, path)
    assert result.returncode != 0
    assert "url_file" in result.stdout + result.stderr


def _routing_cases(config: Config, rules: list[dict[str, Any]]) -> list[dict[str, str]]:
    cases: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}
    for rule in rules:
        labels = {"alertname": rule["alert"], **{k: str(v) for k, v in rule["labels"].items()}}
        cases.setdefault(tuple(sorted(labels.items())), labels)
    return list(cases.values())


def test_amtool_routes_every_demo_alert(tmp_path: Path) -> None:
    """Each generated alert's labels reach the receivers the demo config's routes name."""
    amtool = _amtool()
    config = _demo_config()
    rules = _alert_rules(config)
    path = _runtime_copy(config, tmp_path, rules)
    assert rules, "alert_rules() returned nothing"
    for labels in _routing_cases(config, rules):
        assert labels.get("service") == config.service, labels
        assert labels.get("severity") in ("critical", "warning", "info"), labels
        assert _routes_test(amtool, path, labels) == expected_receivers(config, labels), labels


@pytest.mark.parametrize(("labels", "receivers"), [
    ({"severity": "critical", "alertname": "HighErrorRatio"}, ["ntfy", "discord", "default"]),
    ({"severity": "warning", "alertname": "QueueDepthHigh"}, ["slack"]),
    ({"severity": "info", "alertname": "CpuBudgetBurn"}, ["hook"]),
    ({"severity": "info", "alertname": "Other"}, ["default"]),
    ({"alertname": "NoSeverity"}, ["default"]),
    ({"severity": "critical", "alertname": "OtherService", "service": "other"}, ["default"]),
])
def test_amtool_routes_table(tmp_path: Path, labels: dict[str, str],
                             receivers: list[str]) -> None:
    amtool = _amtool()
    config = _all_types_config(tmp_path)
    path = write_runtime_alertmanager(config, tmp_path / "am.yml", rules=RULES,
                                      env={"PROMKIT_TEST_HOOK_URL": "http://127.0.0.1:9/h"})
    full = {"service": "demo", **labels}
    assert _routes_test(amtool, path, full) == receivers
    if full["service"] == "demo":
        assert expected_receivers(config, full) == receivers


def test_amtool_routes_every_alert_all_receiver_types(tmp_path: Path) -> None:
    amtool = _amtool()
    config = _all_types_config(tmp_path)
    try:
        rules = _alert_rules(config)
    except pytest.skip.Exception:
        rules = RULES
    path = write_runtime_alertmanager(config, tmp_path / "am.yml", rules=rules,
                                      env={"PROMKIT_TEST_HOOK_URL": "http://127.0.0.1:9/h"})
    for labels in _routing_cases(config, rules):
        assert _routes_test(amtool, path, labels) == expected_receivers(config, labels), labels


# -- committed output ------------------------------------------------------------------------


def test_committed_alertmanager_matches_generator(tmp_path: Path) -> None:
    committed = REPO / ALERTMANAGER_PATH
    if not committed.exists():
        pytest.skip("prometheus/alertmanager.yml is not generated yet")
    config = _demo_config()
    rules = _alert_rules(config)
    generated = write_alertmanager(config, tmp_path, rules=rules)
    assert committed.read_text() == generated.read_text(), (
        "prometheus/alertmanager.yml is stale: run `promkit generate`")


# -- runbooks --------------------------------------------------------------------------------


def test_every_alert_has_a_runbook_page_and_every_page_an_alert() -> None:
    config = _demo_config()
    rules = _alert_rules(config)
    runbooks = REPO / "docs" / "runbooks"
    pages = {p.name for p in runbooks.glob("*.md")}
    linked = set()
    for rule in rules:
        link = rule["annotations"]["runbook_url"]
        assert link == f"{config.runbook_base}/{rule['alert']}.md", rule["alert"]
        assert link.startswith("http://127.0.0.1:9099/runbooks/")  # the demo receiver serves
        page = runbooks / link.rsplit("/", 1)[1]
        assert page.is_file(), f"{rule['alert']}: no runbook page {page}"
        linked.add(page.name)
    assert pages - linked == set(), f"runbook pages with no alert: {sorted(pages - linked)}"
    for name in pages:
        text = (runbooks / name).read_text()
        assert text.startswith(f"# {name[:-3]}\n"), name
        for section in ("## What it means", "## First queries", "## Likely causes"):
            assert section in text, f"{name}: missing {section!r}"


def test_slo_page_inhibits_the_symptoms_of_its_sli() -> None:
    config = _demo_config()
    inhibit = alertmanager_config(config, rules=_alert_rules(config))["inhibit_rules"]
    assert {"source_matchers": ['severity="critical"', 'slo=~".+"', 'sli=~".+"'],
            "target_matchers": ['sli=~".+"', 'slo=""'],
            "equal": ["service", "sli"]} in inhibit
    # Without SLO pages (synthetic rules) there is nothing to inhibit with.
    assert not any("sli" in str(r) for r in alertmanager_config(config, rules=RULES)[
        "inhibit_rules"])


def test_the_demo_receiver_serves_every_runbook_url() -> None:
    """The demo's runbook_base is its receiver: each alert's runbook_url answers the page."""
    from starlette.testclient import TestClient

    from demo.receiver import app

    config = _demo_config()
    client = TestClient(app)
    for rule in _alert_rules(config):
        path = rule["annotations"]["runbook_url"].removeprefix("http://127.0.0.1:9099")
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.text.startswith(f"# {rule['alert']}\n")
    assert client.get("/runbooks/..%2F..%2Fpyproject.toml").status_code != 200
    assert client.get("/runbooks/..pyproject.toml").status_code == 404
    assert client.get("/runbooks/Nope.md").status_code == 404
