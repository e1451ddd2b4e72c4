"""The demo end to end: ``python -m demo.run --duration N`` on loopback.

Checks that every part comes up, that Prometheus scrapes every target
(``up == 1`` for demo-api, demo-worker, demo-queues), that the healthy demo
reads healthy (its deliberate errors fire no alert and spend no SLO budget),
that a fault is named among the first three findings of ``promkit report``
within 2 minutes (a stuck worker: queue ``ocr``; credential stuffing: the
failed logins; errors on one route: that route), that the route's errors make
the matching alert fire and reach the webhook receiver through Alertmanager,
that the launcher exits 0, and that no process it started is left behind. Uses
the demo's default ports when they are all free, else a set of free ports
through the DEMO_*_PORT overrides; the run directory is a tmp dir. Bounded:
about 2 minutes.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from demo import settings

from ._servers import find_binary

pytest.importorskip("websockets", reason="the demo needs websockets: pip install -r "
                                         "demo/requirements.txt (make demo does it)")

ROOT = Path(__file__).resolve().parents[2]
DURATION = 85           # seconds the demo runs (its checks take ~50 s); the test stays under 120 s
ALERT = "HTTPErrorRatioHigh"
# Findings no deliberate error of the demo can cause: the machine's disk (shared, its
# use moves with whatever else runs) is the environment's, not the demo's.
ENVIRONMENT = {("alert", "DiskUsageHigh")}
# Fault knob -> how a finding names what it breaks, and what that is. A stuck worker backs
# up queue ocr: the queue_depth issue's subject "queue=ocr", QueueDepthHigh's "Queue ocr
# holds ...". Credential stuffing: AuthFailureSpike, or the auth-success SLO's page.
FAULTS = (
    ("stuck_worker", re.compile(rf"\bqueue[ =]{settings.QUEUE}\b", re.IGNORECASE),
     f"queue {settings.QUEUE}"),
    ("credential_stuffing", re.compile(r"\bauth(FailureSpike|-success)\b", re.IGNORECASE),
     "the failed logins"),
)
ERROR_ROUTE = "/recipes"   # the error_rate fault's route: GET and POST /recipes answer 500


def _free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ports() -> dict[str, int]:
    if all(_free(p) for p in settings.DEFAULT_PORTS.values()):
        return dict(settings.DEFAULT_PORTS)
    ports: dict[str, int] = {}
    while len(set(ports.values())) < len(settings.PORTS):
        ports = {name: _free_port() for name in settings.PORTS}
    return ports


def _has_generator() -> bool:
    result = subprocess.run([sys.executable, "-m", "promkit", "generate", "--help"],
                            capture_output=True, cwd=ROOT, timeout=60)
    return result.returncode == 0


def _wait(check: Callable[[], Any], timeout: float, what: str, proc: subprocess.Popen[str],
          log: Path) -> Any:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the demo exited ({proc.returncode}) before {what}:\n{log.read_text()}")
        try:
            result = check()
            if result:
                return result
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            last = exc
        time.sleep(0.5)
    pytest.fail(f"{what} not seen within {timeout:.0f}s (last error: {last!r}):\n"
                f"{log.read_text()[-4000:]}")


def _report(prometheus: str) -> dict[str, Any]:
    """``promkit report --json`` over the last minute."""
    result = subprocess.run([sys.executable, "-m", "promkit", "report", "--prometheus",
                             prometheus, "--since", "1m", "--json"], capture_output=True,
                            text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def _demo_made(issue: dict[str, Any]) -> bool:
    return issue["kind"] != "disk" and (issue["kind"], issue["subject"]) not in ENVIRONMENT


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def demo_run(tmp_path: Path) -> Iterator[dict[str, Any]]:
    for binary in ("redis-server", "prometheus", "prometheus-alertmanager"):
        if find_binary(binary) is None:
            pytest.skip(f"{binary} is not installed (scripts/ensure-debs.sh installs it)")
    generator = _has_generator()
    ports = _ports()
    run_dir = tmp_path / "run"
    env = dict(os.environ)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update({settings.PORTS[name][0]: str(port) for name, port in ports.items()})
    env["DEMO_RUN_DIR"] = str(run_dir)
    env.pop("DEMO_FAULTS_FILE", None)
    argv = [sys.executable, "-m", "demo.run", "--duration", str(DURATION), "--no-load"]
    if generator:
        # Every alert with a short `for`, 1 s scrapes: the fault's alert fires in seconds.
        argv += ["--alert-for", "5s", "--scrape-interval", "1s"]
    else:
        argv.append("--no-prometheus")
    log = tmp_path / "demo.out"
    started = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                text=True, start_new_session=True)
    info: dict[str, Any] = {"proc": proc, "ports": ports, "run_dir": run_dir, "log": log,
                            "generator": generator, "pids": {}, "started": started}
    try:
        yield info
    finally:
        if proc.poll() is None:  # the test failed early: stop the demo the way a user would
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        for pid in info["pids"].values():  # never leave a stray behind, even on failure
            if _alive(pid):
                os.killpg(pid, signal.SIGKILL)


def test_demo_end_to_end(demo_run: dict[str, Any]) -> None:
    proc: subprocess.Popen[str] = demo_run["proc"]
    ports: dict[str, int] = demo_run["ports"]
    run_dir: Path = demo_run["run_dir"]
    log: Path = demo_run["log"]
    api = f"http://127.0.0.1:{ports['api']}"
    prometheus = f"http://127.0.0.1:{ports['prometheus']}"
    receiver = f"http://127.0.0.1:{ports['receiver']}"

    # Every part came up; remember the PIDs to check afterwards.
    _wait(lambda: "promkit demo is running" in log.read_text(), 60, "all parts ready", proc, log)
    listing = json.loads((run_dir / "processes.json").read_text())
    demo_run["pids"].update({p["name"]: p["pid"] for p in listing})
    expected = {"redis", "fake-services", "receiver", "api", "worker", "queue-exporter"}
    if demo_run["generator"]:
        expected |= {"prometheus", "alertmanager"}
    assert expected <= set(demo_run["pids"]), demo_run["pids"]

    with httpx.Client(timeout=5.0) as client:
        # The API answers and its failure knobs switch at run time.
        assert client.get(f"{api}/healthz").text == "ok"
        assert client.get(f"{api}/admin/faults").json()["error_rate"] == 0.0
        job = client.post(f"{api}/jobs", json={"pages": 2})
        assert job.status_code == 202
        assert job.json()["correlation_id"]
        # The job's completion webhook reaches the receiver with its correlation ID.
        _wait(lambda: any(e["body"].get("job_id") == job.json()["job_id"]
                          and e["correlation_id"] == job.json()["correlation_id"]
                          for e in client.get(f"{receiver}/received",
                                              params={"kind": "job"}).json()),
              30, "the job's completion webhook", proc, log)

        if not demo_run["generator"]:
            pytest.skip("`promkit generate` is not there yet: no Prometheus config, so the "
                        "scrape and alert checks cannot run (the services came up)")

        # Prometheus scrapes every target.
        def all_up() -> bool:
            result = client.get(f"{prometheus}/api/v1/query",
                                params={"query": "min by (job) (up)"}).json()["data"]["result"]
            up = {r["metric"]["job"]: float(r["value"][1]) for r in result}
            return all(up.get(j) == 1.0 for j in ("demo-api", "demo-worker", "demo-queues"))

        _wait(all_up, 40, "up == 1 for demo-api, demo-worker, demo-queues", proc, log)
        rules = client.get(f"{prometheus}/api/v1/rules").json()["data"]["groups"]
        names = {r.get("name") for g in rules for r in g["rules"]}
        if ALERT not in names:
            pytest.skip(f"the generated rules have no {ALERT} alert (have: {sorted(names)})")

        # Healthy: once the SLO rules measure every SLO (the warm-up), the traffic's
        # deliberate errors (a mistyped password, OCR timeouts and 503s, LLM 429s, unknown
        # jobs) fire no alert and spend no SLO budget the report would flag: no critical
        # finding, and none of the kinds they feed. (Before the rules have a value the
        # report computes SLOs from raw metrics with its own defaults, not the config's.)
        def slos_measured() -> dict[str, Any] | None:
            report = _report(prometheus)
            slos = report["health"]["slos"]
            measured = len(slos) == 4 and all(
                s["source"] == "recording_rule" and s["error_budget_remaining"] is not None
                for s in slos)
            return report if measured else None

        healthy = _wait(slos_measured, 40, "every SLO measured by its rules", proc, log)
        found = [i for i in healthy["issues"] if _demo_made(i)]
        assert not [i for i in found if i["severity"] == "critical"], found
        assert not [i for i in found if i["kind"] in (
            "alert", "slo_budget", "http_errors", "stage_failures", "external_errors")], found
        firing = [a["name"] for a in healthy["health"]["alerts"]
                  if a["state"] == "firing" and ("alert", a["name"]) not in ENVIRONMENT]
        assert not firing, healthy["health"]["alerts"]

        # One fault at a time: the report names what it breaks among its first three
        # findings within 2 minutes of switching it on.
        def switch_on(fault: dict[str, Any], names: re.Pattern[str], what: str) -> None:
            switched = time.monotonic()
            assert client.post(f"{api}/admin/faults", json=fault).is_success

            def named() -> list[dict[str, Any]] | None:
                top = _report(prometheus)["issues"][:3]
                found = any(names.search(f"{i['subject']} {i['message']}") for i in top)
                return top if found else None

            top = _wait(named, 120, f"{fault}: {what} among the report's first three "
                                    "findings", proc, log)
            assert time.monotonic() - switched < 120, top

        for knob, names, what in FAULTS:
            switch_on({knob: True}, names, what)
            assert client.post(f"{api}/admin/faults", json={knob: False}).is_success

        # Inject a fault: 60% of the requests to one route fail.
        switch_on({"error_rate": 0.6, "error_route": ERROR_ROUTE},
                  re.compile(rf"\b(GET|POST) {re.escape(ERROR_ROUTE)}\b"), f"route {ERROR_ROUTE}")

        def firing() -> bool:
            alerts = client.get(f"{prometheus}/api/v1/alerts").json()["data"]["alerts"]
            return any(a["labels"]["alertname"] == ALERT and a["state"] == "firing"
                       for a in alerts)

        _wait(firing, 40, f"{ALERT} firing in Prometheus", proc, log)

        # The incident reaches the receiver once: as ALERT (a warning, the availability SLO
        # covers it) or, once the SLO burns fast enough, as its page, which silences ALERT.
        def incident(a: dict[str, Any]) -> bool:
            return a["labels"].get("alertname") == ALERT or (
                a["labels"].get("alertname") == "SLOBurnRatePage"
                and a["labels"].get("sli") == "availability")

        def notified() -> list[dict[str, Any]]:
            items = client.get(f"{receiver}/received", params={"kind": "alertmanager"}).json()
            return [e for e in items if e["body"].get("status") == "firing"
                    and any(incident(a) for a in e["body"].get("alerts", []))]

        notes = _wait(notified, 30, f"an Alertmanager notification for {ALERT} or the "
                                    "availability SLO's page at the receiver", proc, log)
        alert = next(a for a in notes[0]["body"]["alerts"] if incident(a))
        assert alert["labels"]["service"] == "demo"
        client.post(f"{api}/admin/faults", json={"error_rate": 0.0, "error_route": ""})

    # The bounded run ends by itself, verifies the scrape and exits 0.
    remaining = DURATION - (time.monotonic() - demo_run["started"]) + 40
    try:
        code = proc.wait(max(remaining, 10))
    except subprocess.TimeoutExpired:
        pytest.fail(f"the demo did not stop within --duration + 40 s:\n{log.read_text()}")
    output = log.read_text()
    assert code == 0, output
    assert "every part came up and was scraped" in output

    # Nothing left behind: every PID it started is gone, and so are the PID files.
    left = {name: pid for name, pid in demo_run["pids"].items() if _alive(pid)}
    assert not left, f"left running: {left}"
    assert not list((run_dir / "pids").glob("*.pid"))
    assert not (run_dir / "processes.json").exists()
    assert not (run_dir / "launcher.pid").exists()
