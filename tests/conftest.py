"""Shared fixtures. Integration fixtures (real Prometheus, Redis...) live in
``tests/integration/conftest.py``."""

import inspect
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from promkit.instrument import MetricsRegistry


@pytest.fixture
def collector_registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def registry(collector_registry: CollectorRegistry) -> MetricsRegistry:
    """A MetricsRegistry on its own prometheus-client registry (not the global one)."""
    return MetricsRegistry(collector_registry)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: object) -> None:
    # Run `async def` tests on asyncio through anyio's pytest plugin (anyio is a
    # promkit dependency), so no extra pytest plugin is needed. Marked as they are
    # collected, before anyio's own hook looks for the mark: anyio < 4 only sees
    # marks there (a mark added in pytest_collection_modifyitems is too late).
    if (
        inspect.iscoroutinefunction(obj)
        and name.startswith("test")
        and not any(m.name == "anyio" for m in getattr(obj, "pytestmark", ()))
    ):
        pytest.mark.anyio(obj)


@dataclass(frozen=True)
class TlsFiles:
    """PEM files of a throwaway PKI: a CA, a server certificate for 127.0.0.1 and a
    client certificate it signed, and a client certificate signed by another CA."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    stranger_cert: Path  # signed by other_ca, which the server does not trust
    stranger_key: Path
    other_ca: Path


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30)


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """Certificates made for this test session with the openssl command (P-256, 2 days)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed (Debian package 'openssl')")
    d = tmp_path_factory.mktemp("tls")

    def key(name: str) -> Path:
        _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-out", str(d / f"{name}.key"))
        return d / f"{name}.key"

    def ca(name: str) -> Path:
        _openssl("req", "-x509", "-new", "-key", str(key(name)), "-out", str(d / f"{name}.pem"),
                 "-days", "2", "-subj", f"/CN=promkit test {name}",
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                 "-addext", "subjectKeyIdentifier=hash")
        return d / f"{name}.pem"

    def leaf(name: str, issuer: str, usage: str, serial: int, san: str | None = None) -> Path:
        _openssl("req", "-new", "-key", str(key(name)), "-out", str(d / f"{name}.csr"),
                 "-subj", f"/CN=promkit test {name}")
        extensions = ["basicConstraints=critical,CA:FALSE",
                      "keyUsage=critical,digitalSignature", f"extendedKeyUsage={usage}",
                      "subjectKeyIdentifier=hash", "authorityKeyIdentifier=keyid"]
        if san:
            extensions.append(f"subjectAltName={san}")
        (d / f"{name}.ext").write_text("\n".join(extensions) + "\n")
        _openssl("x509", "-req", "-in", str(d / f"{name}.csr"), "-CA", str(d / f"{issuer}.pem"),
                 "-CAkey", str(d / f"{issuer}.key"), "-set_serial", str(serial), "-days", "2",
                 "-out", str(d / f"{name}.pem"), "-extfile", str(d / f"{name}.ext"))
        return d / f"{name}.pem"

    ca("ca")
    ca("other-ca")
    leaf("server", "ca", "serverAuth", 1, san="IP:127.0.0.1,DNS:localhost")
    leaf("client", "ca", "clientAuth", 2)
    leaf("stranger", "other-ca", "clientAuth", 3)
    return TlsFiles(ca=d / "ca.pem", server_cert=d / "server.pem", server_key=d / "server.key",
                    client_cert=d / "client.pem", client_key=d / "client.key",
                    stranger_cert=d / "stranger.pem", stranger_key=d / "stranger.key",
                    other_ca=d / "other-ca.pem")


@pytest.fixture(autouse=True)
def _fresh_log_output():
    """promkit re-checks how logging is configured at most once a second;
    tests configure it and log within microseconds, so look again per test."""
    from promkit.instrument.logs import refresh_log_output

    refresh_log_output()
    yield
    refresh_log_output()


@pytest.fixture(autouse=True)
def _fresh_multiprocess_files(monkeypatch: pytest.MonkeyPatch) -> None:
    """A process keeps its multiprocess value files open for its whole life (as
    prometheus-client's own class does); a test is one such life, so the files a test
    writes are in its own PROMETHEUS_MULTIPROC_DIR, not in an earlier test's."""
    from promkit.instrument import registry

    monkeypatch.setattr(registry, "_multiprocess_value_class", None)
