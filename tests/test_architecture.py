"""The layering of docs/architecture.md, enforced: every import of every product module (module-level
and function-level alike) must be an edge the layer table allows, the unit graph has no cycle, and
the adapters stay where they belong (one module imports redis, only actor / driver modules import
ray, only clients and servers speak HTTP)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("services", "learner", "rollout", "verifier")

# unit -> the units it may import (besides itself, the standard library and third-party packages).
# The same table, with the reasons, is in docs/architecture.md ("Layers").
WIRE = "services.wire"
LAYERS: dict[str, set[str]] = {
    WIRE: set(),
    "verifier": {WIRE},
    "learner": {WIRE},
    "rollout": {WIRE},
    "services.models": set(),
    "services.data": {"verifier"},
    "services.evaluation": {WIRE, "services.data", "rollout", "verifier"},
    "services.control": {WIRE, "services.data", "services.models", "services.evaluation", "learner", "rollout",
                         "verifier"},
    "services.embedded": {WIRE, "services.data", "services.models", "services.evaluation", "services.control",
                          "learner", "rollout", "verifier"},
    "services.api": {WIRE, "services.control"},
    "services.cli": {WIRE, "services.data", "services.models", "services.evaluation", "services.control",
                     "services.embedded", "services.api", "learner", "rollout", "verifier"},
}
ADAPTERS = {  # third-party package -> the only modules that may import it
    "redis": {"services.wire.streams"},
    "ray": {"services.wire.weight_registry", "learner.actor", "rollout.actor", "services.control.controller",
            "services.control.rollout_pool"},
    "httpx": {"services.wire.verifier_client", "services.api.client"},
    "fastapi": {"verifier.app", "services.api.app"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def unit_of(module: str) -> str | None:
    """The layer unit a module belongs to: services.<sub> for services, else the top package."""
    parts = module.split(".")
    if parts[0] not in PRODUCT:
        return None
    if parts[0] == "services":
        return "services." + parts[1] if len(parts) > 1 else "services"
    return parts[0]


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module_name(path).rsplit(".", 0 if path.name == "__init__.py" else 1)[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import: resolve against this module's package
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return found


def product_modules() -> dict[str, Path]:
    return {module_name(p): p for top in PRODUCT for p in (ROOT / top).rglob("*.py")
            if "__pycache__" not in p.parts}


def unit_edges() -> dict[tuple[str, str], list[str]]:
    """(from unit, to unit) -> the 'module -> imported name' lines that make the edge."""
    modules = product_modules()
    edges: dict[tuple[str, str], list[str]] = {}
    for module, path in modules.items():
        src = unit_of(module)
        for name in imports_of(path):
            dst = unit_of(name)
            if dst is None or dst == src:
                continue
            # `from services.wire import messages` names services.wire.messages: keep the deepest real module.
            edges.setdefault((src, dst), []).append(f"{module} -> {name}")
    return edges


def test_every_unit_is_in_the_layer_table():
    units = {unit_of(m) for m in product_modules()} - {"services"}
    assert units <= set(LAYERS), sorted(units - set(LAYERS))


def test_imports_follow_the_layer_table():
    bad = {edge: where for edge, where in unit_edges().items() if edge[1] not in LAYERS.get(edge[0], set())}
    assert not bad, "\n".join(f"{a} may not import {b}: {where[:3]}" for (a, b), where in sorted(bad.items()))


def test_the_unit_graph_has_no_cycle():
    graph: dict[str, set[str]] = {}
    for a, b in unit_edges():
        graph.setdefault(a, set()).add(b)
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in graph.get(node, ()):
            if state.get(nxt) == 1:
                pytest.fail("package cycle: " + " -> ".join(path + [node, nxt]))
            if nxt not in state:
                visit(nxt, path + [node])
        state[node] = 2

    for node in list(graph):
        if node not in state:
            visit(node, [])


@pytest.mark.parametrize("package", sorted(ADAPTERS))
def test_adapters_stay_in_their_modules(package):
    importers = {m for m, p in product_modules().items()
                 if any(n == package or n.startswith(package + ".") for n in imports_of(p))}
    assert importers <= ADAPTERS[package], sorted(importers - ADAPTERS[package])


def test_the_table_itself_is_layered():
    """No unit may be allowed to import one that is allowed to import it back."""
    for unit, allowed in LAYERS.items():
        for other in allowed:
            assert unit not in LAYERS.get(other, set()), (unit, other)
