"""The ``promkit`` command line, run as a real subprocess."""

import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from demo.settings import CONFIG_PATH as DEMO_CONFIG
from promkit import __version__
from promkit.tools import cli
from promkit.tools.cli import build_parser
from promkit.tools.generate import generate, load_config, sdk_available
from promkit.tools.generate.dashboards import DashboardsUnavailable

PYTHON = [sys.executable, "-m", "promkit"]
TOKEN = "cli-test-token"


def run(*args: str, env: dict[str, str] | None = None,
        cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PYTHON, *args], capture_output=True, text=True, timeout=60,
                          env=env, cwd=cwd)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Serving:
    def __init__(self, process: subprocess.Popen[str], url: str, line: str) -> None:
        self.process = process
        self.url = url
        self.line = line  # "promkit: serving metrics on ..."


def start_serve(*args: str, env: dict[str, str] | None = None) -> Serving:
    """Start ``promkit serve`` and wait (bounded) for the line with its URL."""
    process = subprocess.Popen([*PYTHON, "serve", *args], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env)
    assert process.stdout is not None
    deadline = time.monotonic() + 20
    line = ""
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if "serving metrics on" in line or not line:
            break
    match = re.search(r"https?://\S+/metrics", line)
    if match is None:
        process.kill()
        _, err = process.communicate(timeout=10)
        pytest.fail(f"promkit serve did not start: {line!r} {err!r}")
    return Serving(process, match.group(0), line)


@pytest.fixture
def serving() -> Iterator[list[Serving]]:
    started: list[Serving] = []
    yield started
    for item in started:  # never leave a server behind, even when a test fails
        if item.process.poll() is None:
            item.process.kill()
            item.process.communicate(timeout=10)


def stop(item: Serving, signum: int = signal.SIGTERM) -> tuple[int, str, str]:
    item.process.send_signal(signum)
    out, err = item.process.communicate(timeout=15)
    return item.process.returncode, out, err


def test_version_and_help() -> None:
    version = run("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"promkit {__version__}"
    help_ = run("--help")
    assert help_.returncode == 0 and "serve" in help_.stdout
    bare = run()
    assert bare.returncode == 0 and "usage: promkit" in bare.stdout


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "promkit"
    if not script.exists():
        pytest.skip(f"no console script next to {sys.executable}")
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0 and __version__ in result.stdout


def test_every_subcommand_sets_a_handler() -> None:
    parser = build_parser()
    args = parser.parse_args(["serve"])
    assert callable(args.handler)


# -- promkit init and generate ---------------------------------------------------------------


def files_under(directory: Path) -> set[Path]:
    return {p.relative_to(directory) for p in directory.rglob("*") if p.is_file()}


def test_init_writes_a_commented_config_that_generate_reads(tmp_path: Path) -> None:
    project = tmp_path / "my service"
    project.mkdir()
    init = run("init", cwd=project)
    assert init.returncode == 0, init.stderr
    text = (project / "promkit.yaml").read_text()
    assert "service: my-service\n" in text and text.count("\n# ") >= 10
    config = load_config(project / "promkit.yaml")
    assert config.service == "my-service" and config.slos and config.receivers

    result = run("generate", cwd=project)
    assert result.returncode == 0, result.stderr
    written = files_under(project) - {Path("promkit.yaml")}
    assert f"generated {len(written)} files under . from promkit.yaml" in result.stdout
    assert Path("prometheus/rules/alerts.yml") in written
    assert Path("prometheus/alertmanager.yml") in written
    assert (Path("grafana/dashboards/service-overview.json") in written) == sdk_available()


def test_init_never_overwrites_and_checks_the_service_name(tmp_path: Path) -> None:
    (tmp_path / "promkit.yaml").write_text("service: mine\n")
    again = run("init", cwd=tmp_path)
    assert again.returncode == 2
    assert again.stderr == "promkit: error: promkit.yaml exists already; not overwriting it\n"
    assert (tmp_path / "promkit.yaml").read_text() == "service: mine\n"
    bad = run("init", "--service", "no spaces", "--config", "other.yaml", cwd=tmp_path)
    assert bad.returncode == 2 and "'no spaces' is not a valid service name" in bad.stderr
    assert not (tmp_path / "other.yaml").exists()


def test_generate_without_a_config_names_promkit_init(tmp_path: Path) -> None:
    result = run("generate", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "run `promkit init`" in result.stderr
    assert files_under(tmp_path) == set()


def test_generate_without_the_sdk_writes_the_rest_and_says_how_to_get_dashboards(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "grafana_foundation_sdk", None)  # its import fails
    with pytest.raises(DashboardsUnavailable, match=r"promkit\[dashboards\]"):
        generate(load_config(DEMO_CONFIG), tmp_path / "api")
    assert (tmp_path / "api/prometheus/rules/recording.yml").exists()
    assert not (tmp_path / "api/grafana").exists()

    out = tmp_path / "cli"
    assert cli.main(["generate", "--config", str(DEMO_CONFIG), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"generated {len(files_under(out))} files under {out}" in printed
    assert not (out / "grafana").exists() and (out / "prometheus/alertmanager.yml").exists()
    assert "dashboards skipped" in printed and "pip install 'promkit[dashboards]'" in printed
    assert cli.main(["generate", "--config", str(DEMO_CONFIG), "--out", str(out),
                     "--no-dashboards"]) == 0
    assert "skipped" not in capsys.readouterr().out


# -- promkit serve -------------------------------------------------------------------------


def test_serve_scrape_then_sigterm(serving: list[Serving]) -> None:
    port = free_port()
    item = start_serve("--host", "127.0.0.1", "--port", str(port))
    serving.append(item)
    assert item.url == f"http://127.0.0.1:{port}/metrics"
    response = httpx.get(item.url, timeout=10)
    assert response.status_code == 200
    # the default registry: prometheus-client's process collectors and promkit's self-metrics
    assert "process_resident_memory_bytes" in response.text
    assert "# TYPE promkit_instrumentation_errors_total counter" in response.text
    om = httpx.get(item.url, headers={"accept": "application/openmetrics-text"}, timeout=10)
    assert om.text.endswith("# EOF\n")
    code, out, err = stop(item)
    assert code == 0, err
    assert "promkit: stopped" in out and "Traceback" not in err
    with pytest.raises(httpx.ConnectError):
        httpx.get(item.url, timeout=5)


def test_serve_stops_on_sigint(serving: list[Serving]) -> None:
    item = start_serve("--port", "0")
    serving.append(item)
    assert httpx.get(item.url, timeout=10).status_code == 200
    code, _, err = stop(item, signal.SIGINT)
    assert code == 0 and "Traceback" not in err


def test_serve_with_a_token_file(serving: list[Serving], tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    item = start_serve("--port", "0", "--token-file", str(token_file))
    serving.append(item)
    assert httpx.get(item.url, timeout=10).status_code == 401
    ok = httpx.get(item.url, headers={"authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert ok.status_code == 200
    code, _, err = stop(item)
    assert code == 0 and err == ""


def test_serve_with_the_token_from_the_environment(serving: list[Serving]) -> None:
    env = {**os.environ, "PROMKIT_METRICS_TOKEN": TOKEN}
    item = start_serve("--port", "0", env=env)
    serving.append(item)
    assert httpx.get(item.url, timeout=10).status_code == 401
    ok = httpx.get(item.url, headers={"authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert ok.status_code == 200


def test_a_world_readable_token_file_is_warned_about(serving: list[Serving],
                                                     tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    token_file.chmod(0o644)
    item = start_serve("--port", "0", "--token-file", str(token_file))
    serving.append(item)
    _, _, err = stop(item)
    assert "readable by other users" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["serve", "--port", "99999"], "invalid port 99999: must be 0 to 65535"),
        (["serve", "--port", "http"], "invalid port 'http': not a number"),
        (["serve", "--token", "x"], "the token is not accepted on the command line"),
        (["serve", "--token=x"], "the token is not accepted on the command line"),
        (["serve", "--token-fil", "x"], "unrecognized arguments: --token-fil"),
        (["serve", "--token-file", "/nonexistent/token"], "cannot read --token-file"),
        (["serve", "--host", "no-such-host.invalid", "--port", "0"],
         "cannot listen on no-such-host.invalid:0"),
        (["no-such-command"], "invalid choice: 'no-such-command'"),
        (["generate", "--config", "demo/promkit.yaml", "--alertmanager-version", "0.2x"],
         "'0.2x' is not an Alertmanager version"),
        (["generate", "--config", "demo/promkit.yaml", "--alertmanager-version", "0.24"],
         "promkit writes configs for Alertmanager 0.25 or later"),
    ],
)
def test_bad_arguments_exit_2_with_a_clear_message(args: list[str], message: str) -> None:
    result = run(*args)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_empty_token_file_and_empty_env_token_are_refused(tmp_path: Path) -> None:
    empty = tmp_path / "token"
    empty.write_text("\n")
    result = run("serve", "--token-file", str(empty))
    assert result.returncode == 2 and "is empty" in result.stderr
    env = {**os.environ, "PROMKIT_METRICS_TOKEN": ""}
    result = run("serve", "--port", "0", env=env)
    assert result.returncode == 2 and "PROMKIT_METRICS_TOKEN is set but empty" in result.stderr


def test_a_busy_port_is_reported(serving: list[Serving]) -> None:
    item = start_serve("--port", "0")
    serving.append(item)
    port = item.url.rsplit(":", 1)[1].split("/")[0]
    result = run("serve", "--port", port)
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


# -- promkit serve with TLS ------------------------------------------------------------------


def tls_client(tls_files, with_cert: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(tls_files.ca))
    if with_cert:
        context.load_cert_chain(str(tls_files.client_cert), str(tls_files.client_key))
    return context


def test_serve_with_tls_and_required_client_certificates(serving: list[Serving],
                                                         tls_files) -> None:
    item = start_serve("--port", "0", "--tls-cert", str(tls_files.server_cert),
                       "--tls-key", str(tls_files.server_key),
                       "--tls-client-ca", str(tls_files.ca))
    serving.append(item)
    assert item.url.startswith("https://127.0.0.1:")
    assert item.line.rstrip().endswith("/metrics (client certificate required)")
    ok = httpx.get(item.url, verify=tls_client(tls_files, True), timeout=10)
    assert ok.status_code == 200 and "process_resident_memory_bytes" in ok.text
    with pytest.raises(httpx.TransportError):  # no client certificate
        httpx.get(item.url, verify=tls_client(tls_files, False), timeout=10)
    with pytest.raises(httpx.TransportError):  # plain HTTP to the TLS port
        httpx.get(item.url.replace("https://", "http://"), timeout=10)
    assert httpx.get(item.url, verify=tls_client(tls_files, True), timeout=10).status_code == 200
    code, _, err = stop(item)
    assert code == 0 and err == ""


def test_serve_with_tls_warns_about_a_readable_key(serving: list[Serving], tls_files,
                                                   tmp_path: Path) -> None:
    key = tmp_path / "server.key"
    key.write_bytes(tls_files.server_key.read_bytes())
    key.chmod(0o644)
    item = start_serve("--port", "0", "--tls-cert", str(tls_files.server_cert),
                       "--tls-key", str(key))
    serving.append(item)
    assert httpx.get(item.url, verify=tls_client(tls_files, False), timeout=10).status_code == 200
    _, _, err = stop(item)
    assert f"promkit: warning: --tls-key {str(key)!r} (the private key) is readable by " in err


def test_serve_refuses_bad_tls_flags_and_files(tls_files, tmp_path: Path) -> None:
    cert, key = str(tls_files.server_cert), str(tls_files.server_key)
    cases = [
        (["--tls-key", key], "--tls-key needs --tls-cert"),
        (["--tls-client-ca", str(tls_files.ca)], "--tls-client-ca needs --tls-cert"),
        (["--tls-cert", str(tmp_path / "missing.pem"), "--tls-key", key],
         f"cannot read the TLS certificate file {str(tmp_path / 'missing.pem')!r}: "
         "No such file or directory"),
        (["--tls-cert", cert, "--tls-key", str(tmp_path)],
         f"cannot read the TLS key file {str(tmp_path)!r}: Is a directory"),
        (["--tls-cert", cert, "--tls-key", str(tls_files.client_key)],
         f"the private key in the TLS key file {str(tls_files.client_key)!r} does not "
         f"match the certificate in {cert!r}"),
        (["--tls-cert", cert, "--tls-key", key, "--tls-client-ca", key],
         f"the TLS client CA file {key!r} holds no PEM certificate "
         "(-----BEGIN CERTIFICATE-----)"),
        (["--tls-cert", cert, "--tls-key", key, "--tls-client-ca-dir", cert],
         f"the TLS client CA directory {cert!r} is not a directory"),
    ]
    for flags, message in cases:
        result = run("serve", "--port", "0", *flags)
        assert result.returncode == 2, (flags, result.stdout, result.stderr)
        assert result.stderr == f"promkit: error: {message}\n", flags
        assert "serving metrics" not in result.stdout


def test_generate_without_receivers_is_a_one_line_error_and_writes_nothing(
        tmp_path: Path) -> None:
    (tmp_path / "promkit.yaml").write_text(
        "service: shop\ntargets:\n  - {job: api, targets: ['127.0.0.1:8000']}\n")
    result = run("generate", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == ("promkit: error: promkit.yaml: the config has no receivers; "
                             "add at least one under receivers:\n")
    assert files_under(tmp_path) == {Path("promkit.yaml")}
