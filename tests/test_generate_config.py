"""Project config validation: every problem names the file, field path, line and cause."""

from __future__ import annotations

from pathlib import Path

import pytest

from demo.settings import CONFIG_PATH as DEMO_CONFIG
from promkit.tools.generate.config import (
    Config,
    ConfigError,
    config_from_mapping,
    load_config,
    parse_duration,
)

BASE = """\
service: demo
targets:
  - {job: api, targets: ["127.0.0.1:8000"]}
"""


def _load(tmp_path: Path, text: str, name: str = "promkit.yaml") -> Config:
    path = tmp_path / name
    path.write_text(text)
    return load_config(path)


def _error(tmp_path: Path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, text)
    return info.value


def test_demo_config_loads() -> None:
    config = load_config(DEMO_CONFIG)
    assert config.service == "demo"
    assert [t.job for t in config.targets] == ["demo-api", "demo-worker", "demo-queues"]
    assert config.slos[1].threshold_seconds == 0.5
    assert config.routes[0].continue_ is True
    assert config.receiver("ntfy").url == "http://127.0.0.1:9099/ntfy"
    assert config.alertmanager is not None and config.alertmanager.version == "0.25"


def test_minimal_config_has_defaults(tmp_path: Path) -> None:
    config = _load(tmp_path, BASE)
    assert config.thresholds.http_error_ratio == 0.02
    assert config.thresholds.queue_depth == 30
    assert config.scrape_interval == "15s" and config.slos == ()


def test_durations() -> None:
    assert parse_duration("1h30m") == 5400
    assert parse_duration("7d") == 7 * 86400
    assert parse_duration("250ms") == 0.25
    for bad in ("", "15", "5 m", "1.5h", "m5", "1x"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_bad_duration(tmp_path: Path) -> None:
    err = _error(tmp_path, BASE + "scrape_interval: 15 seconds\n")
    assert err.path == "scrape_interval" and err.line == 4
    assert "'15 seconds' is not a duration" in str(err)
    assert str(err).startswith(f"{tmp_path / 'promkit.yaml'}:4: scrape_interval: ")
    err = _error(tmp_path, BASE + "slos:\n  - {name: a, type: availability, objective: 0.9, "
                 "window: 7}\n")
    assert err.path == "slos[0].window" and "duration string" in err.problem


def test_unknown_slo_type(tmp_path: Path) -> None:
    err = _error(tmp_path, BASE + "slos:\n  - {name: a, type: avail, objective: 0.9}\n")
    assert err.path == "slos[0].type" and err.line == 5
    assert "unknown SLO type 'avail'; expected one of availability, latency" in err.problem


@pytest.mark.parametrize("objective", [0, 1, 1.5, -0.1, 99])
def test_objective_outside_0_1(tmp_path: Path, objective: float) -> None:
    err = _error(tmp_path, BASE + f"slos:\n  - {{name: a, type: availability, "
                 f"objective: {objective}}}\n")
    assert err.path == "slos[0].objective" and "strictly between 0 and 1" in err.problem


def test_latency_threshold_must_be_a_bucket_bound(tmp_path: Path) -> None:
    err = _error(tmp_path, BASE + "slos:\n  - {name: lat, type: latency, objective: 0.95, "
                 "threshold_seconds: 0.25}\n")
    assert err.path == "slos[0].threshold_seconds"
    assert "0.25 is not a bucket bound of http_server_request_duration_seconds" in err.problem
    assert "0.2, 0.3" in err.problem
    err = _error(tmp_path, BASE + "slos:\n  - {name: lat, type: latency, objective: 0.95}\n")
    assert "needs threshold_seconds" in err.problem
    err = _error(tmp_path, BASE + "slos:\n  - {name: a, type: availability, objective: 0.9, "
                 "threshold_seconds: 0.2}\n")
    assert "only latency SLOs take threshold_seconds" in err.problem


def test_unknown_threshold_key(tmp_path: Path) -> None:
    err = _error(tmp_path, BASE + "thresholds:\n  http_error_ratio: 0.05\n  queue_dept: 10\n")
    assert err.path == "thresholds.queue_dept" and err.line == 6
    assert "unknown key 'queue_dept'" in err.problem and "queue_depth" in err.problem


def test_threshold_values(tmp_path: Path) -> None:
    err = _error(tmp_path, BASE + "thresholds: {http_error_ratio: 2}\n")
    assert "ratio and must be below 1" in err.problem
    err = _error(tmp_path, BASE + "thresholds: {queue_depth: -1}\n")
    assert "must be > 0" in err.problem
    err = _error(tmp_path, BASE + "thresholds: {queue_depth: lots}\n")
    assert "expected a finite number, got a string ('lots')" in err.problem


@pytest.mark.parametrize(("fields", "got"), [
    ("", "none"),
    ('url: "http://x/a", url_file: /f', "url and url_file"),
    ("url_file: /f, url_env: X", "url_file and url_env"),
])
def test_receiver_needs_exactly_one_url_source(tmp_path: Path, fields: str, got: str) -> None:
    sep = ", " if fields else ""
    err = _error(tmp_path, BASE + f"receivers:\n  - {{name: r, type: ntfy{sep}{fields}}}\n")
    assert err.path == "receivers[0]" and err.line == 5
    assert f"give exactly one of url, url_file, url_env (got {got})" in err.problem


def test_receiver_and_route_checks(tmp_path: Path) -> None:
    err = _error(tmp_path, BASE + "receivers:\n  - {name: r, type: pager, url_env: X}\n")
    assert "unknown receiver type 'pager'" in err.problem
    err = _error(tmp_path, BASE + "receivers:\n  - {name: r, type: slack, url_env: X}\n"
                 "routes:\n  - {receiver: nope}\n")
    assert err.path == "routes[0].receiver" and "unknown receiver 'nope' (r)" in err.problem
    config = _load(tmp_path, BASE + "receivers:\n  - {name: r, type: slack, url_env: HOOK}\n"
                   "routes:\n  - {match: {severity: critical}, receiver: r, continue: true, "
                   "repeat_interval: 4h}\n")
    assert config.routes[0].repeat_interval == "4h" and config.receivers[0].url_env == "HOOK"


def test_yaml_syntax_error_has_line(tmp_path: Path) -> None:
    err = _error(tmp_path, BASE + "slos:\n  - {name: a, type: availability\n  - oops\n")
    assert err.line is not None and err.line >= 5
    assert "YAML syntax error" in str(err)
    assert str(err).startswith(f"{tmp_path / 'promkit.yaml'}:{err.line}: ")


def test_missing_and_unknown_top_level_keys(tmp_path: Path) -> None:
    err = _error(tmp_path, "service: demo\n")
    assert "missing required key 'targets'" in str(err)
    err = _error(tmp_path, BASE + "servise: x\n")
    assert err.path == "servise" and "unknown key" in err.problem
    err = _error(tmp_path, "")
    assert "the config is empty" in str(err)
    err = _error(tmp_path, BASE.replace("127.0.0.1:8000", "http://127.0.0.1:8000/metrics"))
    assert err.path == "targets[0].targets[0]" and "host:port" in err.problem


def test_python_config(tmp_path: Path) -> None:
    path = tmp_path / "promkit_config.py"
    path.write_text("CONFIG = {'service': 'svc', 'targets': [{'job': 'a', "
                    "'targets': ['127.0.0.1:1']}], 'slos': [{'name': 'x', 'type': 'latency', "
                    "'objective': 0.95, 'threshold_seconds': 0.3}]}\n")
    config = load_config(path)
    assert config.service == "svc" and config.slos[0].threshold_seconds == 0.3
    # A Config object round-trips through validation.
    path.write_text("from promkit.tools.generate.config import load_config\n"
                    f"CONFIG = load_config({str(DEMO_CONFIG)!r})\n")
    assert load_config(path) == load_config(DEMO_CONFIG)
    path.write_text("X = 1\n")
    with pytest.raises(ConfigError, match="must define CONFIG"):
        load_config(path)
    path.write_text("CONFIG = {'service': 'svc', 'targets': []}\n")
    with pytest.raises(ConfigError, match=r"promkit_config\.py: targets: the list is empty"):
        load_config(path)


def test_mapping_errors_name_the_source() -> None:
    with pytest.raises(ConfigError, match=r"^<config>: service: expected a non-empty string"):
        config_from_mapping({"service": 3, "targets": []})


def test_slo_whose_page_could_never_fire_is_refused(tmp_path: Path) -> None:
    # 30d: the 1h page factor is 0.02 x 720h / 1h = 14.4; with objective 0.9 (budget 0.1) it
    # would need an error ratio above 1.44. The lowest objective that works: 1 - 1/14.4.
    err = _error(tmp_path, BASE + "slos:\n  - {name: a, type: availability, objective: 0.9, "
                 "window: 30d}\n")
    assert err.path == "slos[0].objective" and err.line == 5
    assert "SLOBurnRatePage over 1h and 5m" in err.problem and "14.4 x 0.1 = 1.44" in err.problem
    assert "objective above 0.930556" in err.problem  # 1 - 1/14.4 = 0.9305555...
    assert "window shorter than 20d20h" in err.problem  # 1h / (0.02 x 0.1) = 500h
    # 7d: factor 3.36, so 0.9 is fine and 0.7 (3.36 x 0.3 = 1.008) is not.
    _load(tmp_path, BASE + "slos:\n  - {name: a, type: availability, objective: 0.9, "
          "window: 7d}\n")
    err = _error(tmp_path, BASE + "slos:\n  - {name: a, type: availability, objective: 0.7, "
                 "window: 7d}\n")
    assert err.path == "slos[0].objective" and "3.36 x 0.3 = 1.008" in err.problem


def test_slo_window_shorter_than_the_alert_windows_is_refused(tmp_path: Path) -> None:
    err = _error(tmp_path, BASE + "slos:\n  - {name: a, type: availability, objective: 0.99, "
                 "window: 2d}\n")
    assert err.path == "slos[0].window" and err.line == 5
    assert "shorter than the longest burn-rate alert window (3d)" in err.problem


def test_alertmanager_version(tmp_path: Path) -> None:
    config = _load(tmp_path, BASE + 'alertmanager: {version: "0.27.0"}\n')
    assert config.alertmanager is not None
    assert config.alertmanager.version == "0.27.0" and config.alertmanager.targets == ()
    err = _error(tmp_path, BASE + "alertmanager: {version: 0.30}\n")
    assert err.path == "alertmanager.version" and 'quote the version: "0.3"' in err.problem
    err = _error(tmp_path, BASE + 'alertmanager: {version: "0.24"}\n')
    assert err.path == "alertmanager.version" and "older than 0.25" in err.problem
    err = _error(tmp_path, BASE + 'alertmanager: {version: "latest"}\n')
    assert err.path == "alertmanager.version" and "not a valid version" in err.problem
