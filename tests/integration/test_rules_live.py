"""Live: a real Prometheus loads the generated rules, evaluates them without errors, and an
HTTP error-ratio alert goes pending -> firing while an app answers 500s."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from demo.settings import CONFIG_PATH as DEMO_CONFIG
from promkit.tools.generate import generate
from promkit.tools.generate.config import config_from_mapping, load_config
from promkit.tools.generate.prometheus_config import prometheus_config


def _drive(app: Any, stop: threading.Event) -> None:
    while not stop.is_set():
        for path in ("/ok", "/fail"):
            with contextlib.suppress(Exception):  # keep driving through hiccups
                app.get(path)
        stop.wait(0.02)


def test_generated_rules_load_evaluate_and_fire(
        tmp_path: Path, prometheus: Callable[..., Any], uvicorn_app: Callable[..., Any]) -> None:
    started = time.monotonic()
    app = uvicorn_app("report_app:app", ready_path="/ok")
    demo = load_config(DEMO_CONFIG)
    config = config_from_mapping({
        "service": "live",
        "scrape_interval": "1s",
        "evaluation_interval": "1s",
        "targets": [{"job": "live-api", "targets": [app.address]}],
        "thresholds": {"http_error_ratio": 0.02},
        "slos": [{"name": s.name, "type": s.type, "objective": s.objective, "window": s.window,
                  **({"threshold_seconds": s.threshold_seconds}
                     if s.threshold_seconds is not None else {})} for s in demo.slos],
        "budgets": {"cpu_hours_per_month": 100},
        "alert_for": {"HTTPErrorRatioHigh": "4s"},
        "runbook_base": "https://runbooks.example/promkit",
        "receivers": [{"name": "default", "type": "webhook", "url": "http://127.0.0.1:9/x"}],
        "routes": [{"receiver": "default"}],
    }, source="live-test")
    generate(config, tmp_path, dashboards=False)
    rules = sorted((tmp_path / "prometheus" / "rules").glob("*.yml"))
    assert [r.name for r in rules] == ["alerts.yml", "recording.yml", "slo.yml"]
    # Every group at the 1s evaluation interval (the month-to-date group's own 1m would
    # leave its rules unevaluated for up to a minute; its expressions read no interval).
    for path in rules:
        data = yaml.safe_load(path.read_text())
        for group in data["groups"]:
            group.pop("interval", None)
        path.write_text(yaml.safe_dump(data))
    server = prometheus(rule_files=rules,
                        scrape_configs=prometheus_config(config)["scrape_configs"])

    stop = threading.Event()
    driver = threading.Thread(target=_drive, args=(app, stop), daemon=True)
    driver.start()
    try:
        server.client.wait_for_targets_up(1, timeout=15)

        # Every rule of every group evaluated, with health "ok" (no evaluation errors).
        def all_ok() -> list[dict[str, Any]] | None:
            groups = server.client.rules()
            bad = [(g["name"], r["name"], r["health"], r.get("lastError", ""))
                   for g in groups for r in g["rules"] if r["health"] != "ok"]
            return None if bad or not groups else groups

        deadline = time.monotonic() + 15
        groups = all_ok()
        while groups is None and time.monotonic() < deadline:
            time.sleep(0.25)
            groups = all_ok()
        if groups is None:
            bad = [(g["name"], r["name"], r["health"], r.get("lastError", ""))
                   for g in server.client.rules() for r in g["rules"] if r["health"] != "ok"]
            raise AssertionError(f"rules not healthy: {bad[:10]}")
        count = sum(len(g["rules"]) for g in groups)
        assert count > 150, count

        # The recorded error ratio sees the 500s (half the traffic).
        server.wait_for_value('service:http_error_ratio:ratio_rate5m{service="live"}',
                              lambda v: 0.3 < v < 0.7, timeout=15)

        # HTTPErrorRatioHigh: pending first, then firing after its `for` (4s).
        states: list[str] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            alerts = [a for a in server.client.alerts()
                      if a["labels"]["alertname"] == "HTTPErrorRatioHigh"]
            if alerts:
                state = alerts[0]["state"]
                if not states or states[-1] != state:
                    states.append(state)
                if state == "firing":
                    break
            time.sleep(0.2)
        assert states == ["pending", "firing"], states
        fired = alerts[0]
        assert fired["labels"]["severity"] == "warning"  # the availability SLO pages instead
        assert fired["labels"]["service"] == "live"
        assert fired["annotations"]["runbook_url"] == (
            "https://runbooks.example/promkit/HTTPErrorRatioHigh.md")
        assert fired["annotations"]["summary"].startswith("live: ")
        assert "%" in fired["annotations"]["summary"]
        assert "of HTTP requests of live answered 5xx" in fired["annotations"]["description"]
    finally:
        stop.set()
        driver.join(5)
    assert time.monotonic() - started < 60
