"""The demo is healthy by design: its deliberate errors stay under its own thresholds.

The numbers that make it so (the traffic's share of wrong passwords, the fake
OCR API's failure rates and the worker's tries) are checked against
demo/promkit.yaml here, so raising an error rate or tightening an SLO fails a
test instead of turning every demo run red. Also: fresh data per run, and the
credential_stuffing and error_route knobs.
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest

from demo import fake_services, run, settings, traffic
from promkit.tools.generate import load_config
from promkit.tools.generate.config import parse_duration

MARGIN = 2.0    # a healthy figure stays at most half of the threshold it could trip


def _slo(kind: str) -> tuple[float, float]:
    """(error budget, the lowest error ratio a burn-rate alert fires at) of the demo's SLO."""
    slo = next(s for s in load_config(settings.CONFIG_PATH).slos if s.type == kind)
    # The generator's most sensitive pair: 10% of the budget in 3 days (SLOBurnRateTicket,
    # docs/alerts.md). In a run shorter than 3 days the 3d window holds the whole run.
    ticket = 0.10 * parse_duration(slo.window) / parse_duration("3d")
    return slo.error_budget, ticket * slo.error_budget


def test_mistyped_passwords_stay_under_the_auth_slo_and_the_spike_alert() -> None:
    _budget, fires_at = _slo("auth_success")
    assert fires_at >= MARGIN / traffic.BAD_LOGIN_EVERY
    # The most logins the traffic can send in 15 minutes (two threads, one flow per
    # 0.15 s at best, 5 of every 19 flows a login) hold fewer than half the failed logins
    # AuthFailureSpike fires at.
    spike = load_config(settings.CONFIG_PATH).thresholds.auth_failures_15m
    logins = 2 / 0.15 * 900 * 5 / 19
    assert logins / traffic.BAD_LOGIN_EVERY * MARGIN <= spike


def test_credential_stuffing_trips_the_spike_alert_within_a_minute() -> None:
    spike = load_config(settings.CONFIG_PATH).thresholds.auth_failures_15m
    assert spike < traffic.STUFFING_PER_SECOND * 60


def test_mistyped_logins_are_evenly_spaced() -> None:
    loop = traffic.Traffic("http://127.0.0.1:1")
    bad = [i for i in range(10 * traffic.BAD_LOGIN_EVERY) if loop._mistyped()]
    assert len(bad) == 10
    assert {b - a for a, b in pairwise(bad)} == {traffic.BAD_LOGIN_EVERY}


def test_ocr_retries_keep_job_failures_under_the_jobs_slo() -> None:
    from demo.worker import OCR_ATTEMPTS

    _budget, fires_at = _slo("job_success")
    per_call = fake_services.OCR_TIMEOUT_RATE + fake_services.OCR_ERROR_RATE
    assert per_call ** OCR_ATTEMPTS * MARGIN <= fires_at
    # Each call's failures stay under the external-call error threshold too.
    external = load_config(settings.CONFIG_PATH).thresholds.external_error_ratio
    assert per_call * MARGIN <= external


def test_credential_stuffing_knob_is_a_switch() -> None:
    assert settings.NO_FAULTS["credential_stuffing"] is False
    assert settings.clean_faults({"credential_stuffing": True}) == {"credential_stuffing": True}
    with pytest.raises(ValueError, match="credential_stuffing must be true or false"):
        settings.clean_faults({"credential_stuffing": 1})


def _demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keep_data: bool) -> run.Demo:
    monkeypatch.setenv("DEMO_RUN_DIR", str(tmp_path))
    monkeypatch.delenv("DEMO_FAULTS_FILE", raising=False)
    monkeypatch.setattr(run, "check_ports", lambda names: None)
    return run.Demo(run.Options(0.0, settings.CONFIG_PATH, prometheus=True, traffic=True,
                                keep_data=keep_data))


def _previous_run(run_dir: Path) -> None:
    for name in run.DATA_DIRS:
        (run_dir / name / "old").mkdir(parents=True)
    (run_dir / "demo-api.sqlite3").write_text("old")
    (run_dir / "logs").mkdir()
    (run_dir / "logs" / "api.log").write_text("old")
    settings.write_faults({"error_rate": 0.5}, run_dir / "faults.json")


def test_a_run_starts_with_fresh_data(tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    _previous_run(tmp_path)
    _demo(tmp_path, monkeypatch, keep_data=False).prepare()
    assert not [n for n in (*run.DATA_DIRS, *run.DATA_FILES) if (tmp_path / n).exists()]
    assert (tmp_path / "logs" / "api.log").exists()      # not data: overwritten per part
    assert settings.FaultReader(tmp_path / "faults.json").get() == settings.NO_FAULTS


def test_keep_data_keeps_it_but_not_the_faults(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    _previous_run(tmp_path)
    _demo(tmp_path, monkeypatch, keep_data=True).prepare()
    assert all((tmp_path / n).exists() for n in (*run.DATA_DIRS, *run.DATA_FILES))
    assert settings.FaultReader(tmp_path / "faults.json").get() == settings.NO_FAULTS


def test_error_route_aims_the_error_rate_at_one_route(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from starlette.requests import Request
    from starlette.responses import PlainTextResponse, Response

    from demo import api

    class Faults:
        def get(self) -> dict[str, object]:
            return {**settings.NO_FAULTS, "error_rate": 1.0, "error_route": "/recipes"}

    async def ok(request: Request) -> Response:
        return PlainTextResponse("ok")

    monkeypatch.setattr(api, "faults", Faults())
    request = Request({"type": "http", "method": "GET", "path": "/", "headers": []})
    assert asyncio.run(api.knobs("/recipes", ok)(request)).status_code == 500
    assert asyncio.run(api.knobs("/login", ok)(request)).status_code == 200
    assert settings.clean_faults({"error_route": ""}) == {"error_route": ""}
    with pytest.raises(ValueError, match="error_route must be a route template"):
        settings.clean_faults({"error_route": "recipes"})
