"""``promkit init`` and ``promkit generate``: the project config written, then read, run as
a real subprocess (or through ``cli.main``)."""

import subprocess
import sys
from pathlib import Path

import pytest

from demo.settings import CONFIG_PATH as DEMO_CONFIG
from promkit.tools import cli
from promkit.tools.generate import generate, load_config, sdk_available
from promkit.tools.generate.dashboards import DashboardsUnavailable

PYTHON = [sys.executable, "-m", "promkit"]


def run(*args: str, env: dict[str, str] | None = None,
        cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PYTHON, *args], capture_output=True, text=True, timeout=60,
                          env=env, cwd=cwd)


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


def test_generate_without_receivers_is_a_one_line_error_and_writes_nothing(
        tmp_path: Path) -> None:
    (tmp_path / "promkit.yaml").write_text(
        "service: shop\ntargets:\n  - {job: api, targets: ['127.0.0.1:8000']}\n")
    result = run("generate", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == ("promkit: error: promkit.yaml: the config has no receivers; "
                             "add at least one under receivers:\n")
    assert files_under(tmp_path) == {Path("promkit.yaml")}
