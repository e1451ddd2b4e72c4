"""``promkit serve``, run as a real subprocess: scrapes, signals, the bearer token, TLS
with client certificates, and its refusals."""

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

PYTHON = [sys.executable, "-m", "promkit"]


def run(*args: str, env: dict[str, str] | None = None,
        cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PYTHON, *args], capture_output=True, text=True, timeout=60,
                          env=env, cwd=cwd)


TOKEN = "cli-test-token"


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
