"""The package surface: one import name, the public API at its root, a light import."""

from __future__ import annotations

import ast
import functools
import json
import subprocess
import sys
from collections.abc import Iterator
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
sdk = "grafana_foundation_sdk" in sys.modules
files = {}
for name, module in list(sys.modules.items()):
    path = getattr(module, "__file__", None)
    if path and name.split(".")[0] in ("promkit", "instrument", "exporters"):
        files.setdefault(path, []).append(name)
print(json.dumps({"light": light, "sdk": sdk, "files": files}))
"""


def test_import_is_light_and_every_module_has_one_name() -> None:
    result = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                            timeout=60, cwd=REPO / "tests")
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    # pyyaml and httpx load when a tool runs; Starlette is not a dependency at all.
    assert found["light"] == []
    # The dashboards' SDK loads only when a dashboard is rendered, not with any module.
    assert found["sdk"] is False
    names = [n for ns in found["files"].values() for n in ns]
    assert all(n == "promkit" or n.startswith("promkit.") for n in names), names
    twice = {path: ns for path, ns in found["files"].items() if len(ns) > 1}
    assert twice == {}
    loaded = {Path(p).resolve() for p in found["files"]}
    for folder in ("instrument", "exporters", "promkit"):
        for source in (REPO / folder).rglob("*.py"):
            if source.name != "__main__.py":
                assert source.resolve() in loaded, f"{source} is not importable as promkit.*"


# -- import cycles ---------------------------------------------------------------------------
# A static scan: every import statement counts, those inside functions too (a lazy import
# that closes a cycle is still a cycle), except under ``if TYPE_CHECKING:``.

_FOLDERS = {"promkit": REPO / "promkit", "promkit.instrument": REPO / "instrument",
            "promkit.exporters": REPO / "exporters"}

KNOWN_RECORDING_CYCLES: list[list[str]] = []
"""Import cycles of promkit.instrument and promkit.exporters that are known and not yet
removed (issue #18). The test below fails on a new cycle, and also when one of these is
gone: then delete it from this list, so that it cannot come back unnoticed."""


def _modules() -> dict[str, Path]:
    """Every promkit module by its import name (instrument/ is promkit.instrument...)."""
    modules: dict[str, Path] = {}
    for package, folder in _FOLDERS.items():
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join((package, *parts))] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_statements(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements of a module at any depth, but not those under TYPE_CHECKING."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        else:
            stack.extend(ast.iter_child_nodes(node))


def _imported(name: str, path: Path, node: ast.Import | ast.ImportFrom,
              modules: dict[str, Path]) -> set[str]:
    """The promkit modules an import statement of module ``name`` (at ``path``) loads."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names} & modules.keys()
    base = node.module or ""
    if node.level:  # relative: from the module's package, one level up per extra dot
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{base}" if base else package
    # ``from package import submodule`` loads the submodule; ``from module import name``
    # loads the module. (A package's own __init__ running first is not counted.)
    targets = {f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
               for alias in node.names}
    return targets & modules.keys()


@functools.cache
def _import_graph() -> dict[str, frozenset[str]]:
    modules = _modules()
    graph: dict[str, frozenset[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        graph[name] = frozenset(target for node in _import_statements(tree)
                                for target in _imported(name, path, node, modules)
                                if target != name)
    return graph


def _import_cycles() -> list[list[str]]:
    """The import cycles as sorted lists of the modules that import each other."""
    graph = _import_graph()

    def reachable(start: str) -> set[str]:
        seen: set[str] = set()
        stack = list(graph[start])
        while stack:
            module = stack.pop()
            if module not in seen:
                seen.add(module)
                stack.extend(graph[module])
        return seen

    reach = {module: reachable(module) for module in graph}
    cycles = {frozenset({module, *(m for m in reach[module] if module in reach[m])})
              for module in graph if module in reach[module]}
    return sorted(sorted(cycle) for cycle in cycles)


def _describe(cycles: list[list[str]]) -> str:
    graph = _import_graph()
    return "\n".join(f"{module} imports {', '.join(sorted(graph[module] & set(cycle)))}"
                     for cycle in cycles for module in cycle)


def _in_tools(cycle: list[str]) -> bool:
    return any(m == "promkit.tools" or m.startswith("promkit.tools.") for m in cycle)


def test_the_scan_counts_lazy_imports_and_submodules() -> None:
    modules = _modules()
    here = "promkit.instrument.queues"
    source = ("from typing import TYPE_CHECKING\n"
              "if TYPE_CHECKING:\n    from promkit.instrument.jobs import JobTracker\n"
              "def f():\n    from promkit.instrument import logs\n"
              "    from . import tracing\n")
    found = {target for node in _import_statements(ast.parse(source))
             for target in _imported(here, modules[here], node, modules)}
    # A lazy ``from package import submodule`` is an edge to the submodule (not the
    # package), relative imports resolve, and TYPE_CHECKING imports do not count.
    assert found == {"promkit.instrument.logs", "promkit.instrument.tracing"}


def test_the_tools_have_no_import_cycles() -> None:
    cycles = [cycle for cycle in _import_cycles() if _in_tools(cycle)]
    assert cycles == [], _describe(cycles)


def test_the_recording_side_has_only_its_known_import_cycles() -> None:
    cycles = [cycle for cycle in _import_cycles() if not _in_tools(cycle)]
    assert cycles == KNOWN_RECORDING_CYCLES, _describe(cycles)


KNOWN_PRIVATE_IMPORTS: list[tuple[str, str]] = []
"""Imports of another package's underscore module (DESIGN.md: private helpers are used only
inside their own package) that are known and not yet removed. As with the cycles, the test
fails on a new one and when one of these is gone."""


def _package(module: str) -> str:
    """promkit.instrument, promkit.exporters, promkit.tools (or promkit itself)."""
    return ".".join(module.split(".")[:2])


def test_no_package_imports_another_packages_private_modules() -> None:
    # promkit.instrument, promkit.exporters and promkit.tools each use only their own
    # underscore modules (and promkit's own, such as promkit._version).
    graph = _import_graph()
    found = sorted(
        (module, target) for module, targets in graph.items() for target in targets
        if target.rpartition(".")[2].startswith("_") and target.rpartition(".")[0] != "promkit"
        and _package(target) != _package(module))
    assert found == sorted(KNOWN_PRIVATE_IMPORTS)
