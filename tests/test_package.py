"""The package surface: one import name, the public API at its root, a light import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import promkit
from promkit import exporters, instrument

REPO = Path(__file__).resolve().parents[1]


def test_the_root_exports_both_halves_and_nothing_else() -> None:
    assert set(promkit.__all__) == set(instrument.__all__) | set(exporters.__all__) | {
        "__version__"}
    assert len(promkit.__all__) == len(set(promkit.__all__))
    for name in promkit.__all__:
        assert getattr(promkit, name) is not None, name
    for name in instrument.__all__:
        assert getattr(promkit, name) is getattr(instrument, name), name
    for name in exporters.__all__:
        assert getattr(promkit, name) is getattr(exporters, name), name


def test_the_first_things_a_user_imports_are_at_the_root() -> None:
    for name in ("HttpMetricsMiddleware", "MetricsRegistry", "stage_timer", "metrics_app",
                 "configure_logging", "JobTracker", "RedisQueueCollector",
                 "start_metrics_server", "push_metrics"):
        assert name in promkit.__all__


# Run in a fresh interpreter: this test process has imported everything already.
_PROBE = """
import json, pkgutil, sys
import promkit
light = sorted(n for n in ("yaml", "httpx", "starlette", "promkit.tools") if n in sys.modules)
import promkit.tools.cli, promkit.tools.generate, promkit.tools.report, promkit.tools.loadgen
for info in pkgutil.walk_packages(promkit.__path__, "promkit."):
    if not info.name.endswith(".__main__"):  # that one runs the command
        __import__(info.name)
files = {}
for name, module in list(sys.modules.items()):
    path = getattr(module, "__file__", None)
    if path and name.split(".")[0] in ("promkit", "instrument", "exporters"):
        files.setdefault(path, []).append(name)
print(json.dumps({"light": light, "files": files}))
"""


def test_import_is_light_and_every_module_has_one_name() -> None:
    result = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                            timeout=60, cwd=REPO / "tests")
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    # pyyaml and httpx load when a tool runs; Starlette is not a dependency at all.
    assert found["light"] == []
    names = [n for ns in found["files"].values() for n in ns]
    assert all(n == "promkit" or n.startswith("promkit.") for n in names), names
    twice = {path: ns for path, ns in found["files"].items() if len(ns) > 1}
    assert twice == {}
    loaded = {Path(p).resolve() for p in found["files"]}
    for folder in ("instrument", "exporters", "promkit"):
        for source in (REPO / folder).rglob("*.py"):
            if source.name != "__main__.py":
                assert source.resolve() in loaded, f"{source} is not importable as promkit.*"
