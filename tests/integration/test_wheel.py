"""The wheel a user installs: built from this checkout, installed without dev extras in a
fresh venv, and used from an empty directory.

One module-scoped build and install (about half a minute, mostly pip); each test then
checks one thing a new user relies on: one import name, the public API without the
command's dependencies, the middleware and /metrics, ``promkit init`` and ``promkit
generate``, and nothing written outside the directory the user is in.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "tests" / "apps" / "wheel_smoke.py"


@dataclass
class Installed:
    wheel: Path
    venv: Path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def promkit(self) -> Path:
        return self.venv / "bin" / "promkit"


def _run(argv: list[str | Path], cwd: Path, env: dict[str, str],
         timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def _clean_env(home: Path) -> dict[str, str]:
    """A user's environment: no PYTHONPATH, no venv of ours, HOME a directory we watch."""
    keep = {k: v for k, v in os.environ.items()
            if k in {"PATH", "LANG", "LC_ALL", "TMPDIR", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL",
                     "PIP_CONFIG_FILE", "PIP_FIND_LINKS", "PIP_CACHE_DIR"}}
    keep["PATH"] = os.pathsep.join(p for p in keep.get("PATH", "/usr/bin:/bin").split(os.pathsep)
                                   if not p.startswith(str(Path(sys.prefix))))
    if "PIP_CACHE_DIR" not in keep:  # reuse the machine's download cache, not the fake HOME
        keep["PIP_CACHE_DIR"] = str(Path.home() / ".cache" / "pip")
    return {**keep, "HOME": str(home), "PYTHONDONTWRITEBYTECODE": "1"}


def _files(root: Path) -> dict[str, float]:
    """Every file under ``root`` with its modification time, bytecode caches aside."""
    return {str(p.relative_to(root)): p.stat().st_mtime for p in root.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    base = tmp_path_factory.mktemp("wheel")
    env = _clean_env(base / "build-home")
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", base / "dist",
                  REPO], cwd=base, env=env)
    assert built.returncode == 0, built.stderr
    (wheel,) = (base / "dist").glob("promkit-*.whl")
    venv.create(base / "venv", with_pip=True)
    target = Installed(wheel, base / "venv")
    install = _run([target.python, "-m", "pip", "install", "-q",
                    "--disable-pip-version-check", wheel], cwd=base, env=env)
    assert install.returncode == 0, install.stderr
    yield target


@pytest.fixture
def user_dir(tmp_path: Path) -> Path:
    """An empty directory to work in (``work``) beside an empty HOME (``home``)."""
    (tmp_path / "work").mkdir()
    (tmp_path / "home").mkdir()
    return tmp_path


def test_the_wheel_installs_one_import_name_promkit(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = wheel.namelist()
    roots = {name.split("/")[0] for name in names}
    assert {r for r in roots if not r.endswith(".dist-info")} == {"promkit"}
    modules = [n for n in names if n.endswith(".py")]
    assert len(modules) == len(set(modules))
    # The recording and export sides, the tools, the typing marker and init's starter.
    for expected in ("promkit/__init__.py", "promkit/py.typed", "promkit/instrument/catalog.py",
                     "promkit/exporters/_redis_collector.py", "promkit/tools/cli.py",
                     "promkit/tools/starter.yaml", "promkit/tools/generate/rules.py",
                     "promkit/tools/report/render.py"):
        assert expected in names
    # Each repository module is in the wheel exactly once, under its promkit name.
    for folder, package in (("instrument", "promkit/instrument"),
                            ("exporters", "promkit/exporters")):
        for source in (REPO / folder).glob("*.py"):
            assert f"{package}/{source.name}" in names
    site = next((installed.venv / "lib").glob("python3*/site-packages"))
    assert not (site / "instrument").exists() and not (site / "exporters").exists()


def test_the_public_api_serves_a_plain_asgi_app_and_its_metrics(
        installed: Installed, user_dir: Path) -> None:
    env = _clean_env(user_dir / "home")
    result = _run([installed.python, SMOKE], cwd=user_dir / "work", env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["promkit_file"].startswith(str(installed.venv))
    assert report["loaded_on_import"] == []
    assert report["statuses"] == [200, 200, 200]
    assert all(body.startswith("hello ") and len(body) > 10 for body in report["bodies"])
    assert report["metrics_app_status"] == 200
    for body in (report["metrics_app_body"], report["metrics_over_http"]):
        assert 'http_server_request_duration_seconds_count{http_request_method="GET"' in body
        count = next(line for line in body.splitlines()
                     if line.startswith("http_server_request_duration_seconds_count{"))
        assert count.endswith(" 3.0")
        assert 'stage="hello"' in body


def test_the_tools_write_only_into_the_users_directory(
        installed: Installed, user_dir: Path) -> None:
    work, home = user_dir / "work", user_dir / "home"
    env = _clean_env(home)
    before = _files(installed.venv)

    missing = _run([installed.promkit, "generate"], cwd=work, env=env, timeout=60)
    assert missing.returncode == 2 and "promkit init" in missing.stderr

    init = _run([installed.promkit, "init", "--service", "shop"], cwd=work, env=env, timeout=60)
    assert init.returncode == 0, init.stderr
    generate = _run([installed.promkit, "generate"], cwd=work, env=env, timeout=120)
    assert generate.returncode == 0, generate.stderr
    written = {p.relative_to(work).as_posix() for p in work.rglob("*") if p.is_file()}
    assert "promkit.yaml" in written and "prometheus/rules/slo.yml" in written
    assert f"generated {len(written) - 1} files under ." in generate.stdout
    # The plain install has no dashboards extra: everything else, and a note saying how.
    assert not any(p.startswith("grafana/") for p in written)
    assert "pip install 'promkit[dashboards]'" in generate.stdout

    # The report's modules and httpx load from the wheel: an unreachable Prometheus is
    # one clear line.
    report = _run([installed.promkit, "report", "--prometheus", "http://127.0.0.1:1",
                   "--timeout", "2"], cwd=work, env=env, timeout=60)
    assert report.returncode == 2
    assert report.stderr.startswith("promkit: error: cannot reach Prometheus at ")

    assert _files(installed.venv) == before, "promkit wrote into its own venv"
    assert list(home.iterdir()) == [], "promkit wrote into HOME"
