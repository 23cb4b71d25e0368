"""The import rules of the layout, read from the source (AST), lazy imports included.

1. pure data logic (no Dagster): paths, canonical variables, settings, the simulator, the
   upstream readers and conversion, normalization and rollout, metrics and scores;
2. services: ``resources/`` and ``model_registry/``;
3. Dagster wiring: the rest of ``weather_assets/`` (assets, checks, sensors, partitions, keys);
4. entry points: ``definitions.py``, the CLI, the demo, backfills.

Each layer imports only from its own layer and the ones below it, and no modules import each
other in a circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

PACKAGES = ("weather_assets", "resources", "model_registry")
LAYER1 = {
    "weather_assets.paths",
    "weather_assets.canonical",
    "weather_assets.settings",
    "weather_assets.simulator",
    "weather_assets.ingest.readers",
    "weather_assets.ingest.convert",
    "weather_assets.quality",
    "weather_assets.pictures",
    "weather_assets.forecast.normalize",
    "weather_assets.forecast.drift",
    "weather_assets.forecast.rollout",
    "weather_assets.forecast.dataset",
    "weather_assets.verification.metrics",
    "weather_assets.verification.scores",
    "weather_assets.verification.climatology",
    "weather_assets.verification.scorecard",
    "weather_assets.verification.schemas",
    "weather_assets.products.grib2",
    "weather_assets.products.promotion",
    "weather_assets.verification.significance",
    "weather_assets.verification.regions",
}
LAYER4 = {"definitions", "weather_assets.demo", "weather_assets.backfill"}


def _modules() -> dict[str, Path]:
    found = {"definitions": ROOT / "definitions.py"}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _layer(module: str) -> int:
    if module in LAYER4 or module.startswith("weather_assets.cli"):
        return 4
    if module in LAYER1 or module in PACKAGES or module.count(".") == 1 and _is_package(module):
        return 1  # a package's __init__ holds a docstring, nothing to depend on
    if module.split(".")[0] in ("resources", "model_registry"):
        return 2
    return 3


def _is_package(module: str) -> bool:
    return (ROOT / module.replace(".", "/") / "__init__.py").is_file()


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """Project modules imported anywhere in a file (module level or inside functions)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            if name in modules:
                out.add(name)
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, modules) - {name} for name, path in modules.items()}


def _imports_dagster(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import) and any(
            a.name.split(".")[0] == "dagster" for a in node.names
        ):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "dagster":
            return True
    return False


def test_layers_import_only_downwards():
    wrong = [
        f"{module} (layer {_layer(module)}) imports {target} (layer {_layer(target)})"
        for module, targets in sorted(_graph().items())
        for target in sorted(targets)
        if _layer(target) > _layer(module)
    ]
    assert not wrong, "\n".join(wrong)


def test_pure_data_logic_does_not_import_dagster():
    modules = _modules()
    assert LAYER1 - set(modules) <= {"weather_assets.forecast.dataset"}
    wrong = sorted(m for m in LAYER1 & set(modules) if _imports_dagster(modules[m]))
    assert not wrong, f"layer-1 modules importing dagster: {wrong}"


def test_no_import_circles():
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    assert not circles, f"modules importing each other in a circle: {circles}"
