"""Imports flow one way: from the app layer down to core.

The layers, lowest first; a module may import its own layer and the layers below it,
never one above:

1. `pipeline` (the package's `__version__`) and `pipeline.core`: errors, settings, the
   clock, secrets scrubbing, progress bars, shipped files.
2. `pipeline.storage`: the home, its layout, the dataset registry (the alert log too),
   the schemas.
3. `pipeline.sim`: the embedded API simulator.
4. `pipeline.landing`: raw zone, flattening, the Parquet history.
5. `pipeline.source`: the API client and one collection (which lands what it fetched).
6. `pipeline.billing`: billed charges (fetched with the source, kept like the history).
7. `pipeline.market`: market snapshots of the offer search (a source of no account).
8. `pipeline.warehouse`: models, the build, the read-only query, the checks.
9. `pipeline.alerts`: rules over the history and the warehouse, delivery.
10. `pipeline.reports`: reports and the FOCUS export, read from the warehouse.
11. `pipeline.metrics`: the fleet as Prometheus metrics, read from the warehouse and the
    alert state.
12. the app layer: `pipeline.cli` (a package: the commands), `pipeline.demo`,
    `pipeline.startup` (settings checked by every layer at start, the Dagster home) and
    the Dagster definitions `assets`.

Two rules besides the order: within the warehouse the read side (`query`) does not
import the build side (`BUILD_SIDE`), and only `pipeline.cli` and its modules (and
`assets` itself) import `assets` (the CLI runs assets in-process; the demo is handed its
recorder by the CLI). Every import counts, also those inside functions.
`KNOWN_CROSSINGS` lists the ones not mended yet (none now): the test fails on any other,
and on a listed one that is gone, so the list only shrinks.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LAYERS = ("core", "storage", "sim", "landing", "source", "billing", "market", "warehouse",
          "alerts", "reports", "metrics", "app")
APP_MODULES = ("pipeline.cli", "pipeline.demo", "pipeline.startup")
BUILD_SIDE = ("build", "chunks", "dailystore", "dbfile", "runners", "sources", "state",
              "window")  # the modules of pipeline.warehouse that make up the build
FORBIDDEN_PAIRS = {("pipeline.warehouse.query", f"pipeline.warehouse.{m}") for m in BUILD_SIDE}
# Crossings still to mend, by (importer, imported): none left. Kept (empty) so the test below
# says which edge is new when one appears.
KNOWN_CROSSINGS: set[tuple[str, str]] = set()


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _layer(module: str) -> int:
    """The index in LAYERS of a first-party module."""
    if module.startswith("assets") or module.startswith(APP_MODULES):
        return LAYERS.index("app")
    parts = module.split(".")
    if len(parts) == 1:  # `pipeline` itself: the version
        return 0
    return LAYERS.index(parts[1])


def _imports(path: Path, module: str) -> set[str]:
    """Every first-party module `path` imports (at the top or inside a function)."""
    found: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pipeline.x import y` may name a submodule y: count the deeper one too
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names
                      if _is_module(f"{base}.{alias.name}")}
    return {m for m in found if m.split(".")[0] in ("pipeline", "assets")}


def _is_module(name: str) -> bool:
    path = REPO.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _edges() -> set[tuple[str, str]]:
    edges = set()
    for root in ("pipeline", "assets"):
        for path in sorted((REPO / root).rglob("*.py")):
            module = _module_name(path)
            edges |= {(module, imported) for imported in _imports(path, module)}
    return edges


def _crossing(importer: str, imported: str) -> bool:
    if (importer, imported) in FORBIDDEN_PAIRS:
        return True
    if imported.startswith("assets"):
        return not (importer == "pipeline.cli" or importer.startswith(("pipeline.cli.", "assets")))
    return _layer(imported) > _layer(importer)


def test_every_first_party_module_has_a_layer() -> None:
    modules = {m for edge in _edges() for m in edge}
    assert "pipeline.warehouse.build" in modules and "assets.definitions" in modules
    for module in modules:
        assert 0 <= _layer(module) < len(LAYERS), module


def test_imports_flow_from_the_app_layer_down_to_core() -> None:
    crossings = {edge for edge in _edges() if _crossing(*edge)}
    assert crossings - KNOWN_CROSSINGS == set(), "imports against the layer order"
    assert KNOWN_CROSSINGS - crossings == set(), "mended: remove from KNOWN_CROSSINGS"


def test_the_rule_sees_an_upward_import() -> None:
    """The checker itself: an import from a lower layer of a higher one is a crossing, a
    downward one is not, and the two special rules hold."""
    assert _crossing("pipeline.storage.store", "pipeline.warehouse.models")
    assert not _crossing("pipeline.warehouse.models", "pipeline.storage.store")
    assert _crossing("pipeline.warehouse.query", "pipeline.warehouse.build")
    assert _crossing("pipeline.demo", "assets.record")
    assert not _crossing("pipeline.cli", "assets.inprocess")
    assert not _crossing("pipeline.cli.collection", "assets.inprocess")
    # the mended ones would be seen again
    assert _crossing("pipeline.core.config", "pipeline.alerts.settings")
    assert _crossing("pipeline.core.config", "pipeline.storage.objectstore")
    assert _crossing("pipeline.source.collect", "pipeline.alerts.hooks")
    assert not _crossing("pipeline.startup", "pipeline.alerts.settings")
