"""docker-compose.yml, checked structurally (no Docker engine runs on our machines).

Services, images pinned by tag, the same ports as the native demo's defaults
(demo/settings.py), volumes that point at files in the repository or at files
`promkit generate` writes, and the Dockerfile the demo services build from.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml")

from demo import settings  # noqa: E402
from demo.settings import CONFIG_PATH as DEMO_CONFIG  # noqa: E402
from promkit.tools.generate import generate, load_config  # noqa: E402
from promkit.tools.generate.dashboards import sdk_available  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"

DEMO_SERVICES = {"fake-services", "receiver", "api", "worker", "queue-exporter", "traffic"}
SERVERS = {"stack", "redis", "prometheus", "alertmanager", "grafana"}
# Mount sources that `promkit generate` (or the dashboard generator) writes,
# relative to the repository root; they need not be committed.
GENERATED = {
    "prometheus/prometheus.yml": "promkit generate",
    "prometheus/rules": "promkit generate",
    "prometheus/alertmanager.yml": "promkit generate",
    "grafana/provisioning": "the dashboard generator",
    "grafana/dashboards": "the dashboard generator",
}
PINNED_IMAGE = re.compile(r"^[a-z0-9./_-]+:(?!latest$)[A-Za-z0-9._-]*\d[A-Za-z0-9._-]*$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(compose["services"])


def _published(services: dict[str, dict[str, Any]]) -> dict[int, str]:
    """container port -> host binding, from every service's ``ports``."""
    out: dict[int, str] = {}
    for spec in services.values():
        for entry in spec.get("ports", []):
            parts = str(entry).split(":")
            container = int(parts[-1].split("/")[0])
            assert container not in out, f"port {container} published twice"
            out[container] = str(entry)
    return out


def _volume_sources(services: dict[str, dict[str, Any]]) -> list[tuple[str, str]]:
    out = []
    for name, spec in services.items():
        for entry in spec.get("volumes", []):
            source = entry["source"] if isinstance(entry, dict) else str(entry).split(":")[0]
            out.append((name, source))
    return out


def test_has_every_service(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == SERVERS | DEMO_SERVICES


def test_images_pinned_by_tag(services: dict[str, dict[str, Any]]) -> None:
    for name, spec in services.items():
        image = spec.get("image")
        assert image, f"{name}: no image"
        assert PINNED_IMAGE.match(image), f"{name}: image {image!r} is not pinned by a version tag"
    images = {spec["image"].split(":")[0] for spec in services.values()}
    for wanted in ("prom/prometheus", "prom/alertmanager", "redis", "grafana/grafana"):
        assert wanted in images


def test_python_base_image_pinned() -> None:
    dockerfile = (ROOT / "demo" / "Dockerfile").read_text(encoding="utf-8")
    bases = re.findall(r"^FROM\s+(\S+)", dockerfile, flags=re.MULTILINE)
    assert bases and all(PINNED_IMAGE.match(b) for b in bases), bases
    assert any(b.startswith("python:") for b in bases)
    for copied in re.findall(r"^COPY\s+(\S+)\s", dockerfile, flags=re.MULTILINE):
        assert (ROOT / copied).exists(), f"Dockerfile copies {copied}, which does not exist"


def test_the_dockerfile_copies_every_folder_of_the_package() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    dockerfile = (ROOT / "demo" / "Dockerfile").read_text(encoding="utf-8")
    copied = set(re.findall(r"^COPY\s+(\S+)\s", dockerfile, flags=re.MULTILINE))
    package_dirs = set(tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
                       ["tool"]["setuptools"]["package-dir"].values())
    assert package_dirs == {"promkit", "instrument", "exporters"}
    assert package_dirs <= copied


def test_demo_services_build_from_the_dockerfile(services: dict[str, dict[str, Any]]) -> None:
    for name in DEMO_SERVICES:
        build = services[name].get("build")
        assert build, f"{name} has no build"
        assert (ROOT / build["context"] / build["dockerfile"]).is_file()


def test_ports_match_the_native_demo(services: dict[str, dict[str, Any]]) -> None:
    published = _published(services)
    for name, port in settings.DEFAULT_PORTS.items():
        assert port in published, f"{name} port {port} is not published"
        assert published[port] == f"127.0.0.1:{port}:{port}", (
            f"{name}: {published[port]!r}; publish on loopback, host port = container port")
    assert 3000 in published  # Grafana


def test_processes_listen_on_the_native_ports(services: dict[str, dict[str, Any]]) -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    ports = settings.DEFAULT_PORTS
    assert f'"--port", "{ports["redis"]}"' in text
    assert f"--web.listen-address=:{ports['prometheus']}" in text
    assert f"--web.listen-address=:{ports['alertmanager']}" in text
    exporter = services["queue-exporter"]["command"]
    assert exporter[exporter.index("--port") + 1] == str(ports["queue_exporter"])
    assert exporter[exporter.index("--redis-queue") + 1] == settings.QUEUE_SPEC
    assert f"127.0.0.1:{ports['redis']}" in exporter[exporter.index("--redis-url") + 1]
    for name in DEMO_SERVICES - {"queue-exporter"}:
        command = services[name]["command"]
        module = command[command.index("-m") + 1]
        assert (ROOT / (module.replace(".", "/") + ".py")).is_file(), f"{name}: {module}"


def test_one_network_namespace(services: dict[str, dict[str, Any]]) -> None:
    # The generated prometheus.yml scrapes 127.0.0.1:<port>: every service must
    # share the namespace of the one that publishes the ports.
    for name, spec in services.items():
        if name == "stack":
            continue
        assert spec.get("network_mode") == "service:stack", name
        assert "ports" not in spec, f"{name}: ports are published by `stack` only"


def test_prometheus_flags(services: dict[str, dict[str, Any]]) -> None:
    command = services["prometheus"]["command"]
    assert "--web.enable-lifecycle" in command
    assert "--enable-feature=exemplar-storage" in command


def test_volume_sources_exist_or_are_generated(services: dict[str, dict[str, Any]]) -> None:
    named = set((yaml.safe_load(COMPOSE.read_text()) or {}).get("volumes") or {})
    for service, source in _volume_sources(services):
        if not source.startswith("."):
            assert source in named, f"{service}: volume {source!r} is not declared"
            continue
        rel = Path(source).as_posix().removeprefix("./")
        if rel in GENERATED:
            continue  # checked against the generator's output below
        assert (ROOT / rel).exists(), f"{service}: mounts {source}, which does not exist"


def test_generated_mounts_are_what_promkit_generate_writes(
        services: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    # the dashboards need grafana-foundation-sdk (Python >= 3.11); the rest is checked anyway
    generate(load_config(DEMO_CONFIG), tmp_path, dashboards=sdk_available())
    mounted = {Path(s).as_posix().removeprefix("./") for _n, s in _volume_sources(services)}
    missing_grafana = []
    for rel, writer in GENERATED.items():
        assert rel in mounted, f"{rel} is listed as generated but not mounted"
        if writer == "promkit generate":
            assert (tmp_path / rel).exists(), f"`promkit generate` did not write {rel}"
        elif not (tmp_path / rel).exists():
            missing_grafana.append(rel)
    if missing_grafana:
        assert not sdk_available(), f"the dashboard generator did not write {missing_grafana}"
        pytest.skip("the Grafana mounts need promkit[dashboards] (Python >= 3.11)")


def test_alertmanager_url_files_are_mounted(services: dict[str, dict[str, Any]],
                                            tmp_path: Path) -> None:
    """Every url_file the generated alertmanager.yml names is mounted from the repo."""
    generate(load_config(DEMO_CONFIG), tmp_path, dashboards=False)
    config = yaml.safe_load((tmp_path / "prometheus" / "alertmanager.yml").read_text())
    wanted = {entry[key] for receiver in config.get("receivers", [])
              for integration in receiver.values() if isinstance(integration, list)
              for entry in integration for key in entry if key.endswith("_file")}
    targets = {}
    for entry in services["alertmanager"].get("volumes", []):
        source, target = str(entry).split(":")[:2]
        targets[target] = source
    for path in wanted:
        assert path in targets, f"alertmanager.yml reads {path}; mount it"
        assert (ROOT / targets[path]).is_file()
