"""Every module of the project sits in one of the import-linter layers, so none escapes them."""

from __future__ import annotations

import pkgutil
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _layer_modules() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (layers,) = [c for c in config["contracts"] if c["type"] == "layers"]
    return [m for layer in layers["layers"] for m in re.split(r"[|:]", layer) if m.strip()]


def _modules(package: str) -> list[str]:
    found = []
    for info in pkgutil.walk_packages([str(ROOT / package)], prefix=f"{package}."):
        found.append(info.name)
    return found


def test_every_module_is_in_a_layer() -> None:
    layers = [m.strip() for m in _layer_modules()]

    def covered(module: str) -> bool:
        return any(module == m or module.startswith(m + ".") for m in layers)

    # activities and store are layers as a whole; conveyor and workflows are layered by module
    assert "activities" in layers and "store" in layers
    loose = [m for p in ("conveyor", "workflows") for m in _modules(p) if not covered(m)]
    assert loose == [], (
        f"modules outside every layer of [tool.importlinter]: {loose}; "
        "add each to its layer in pyproject.toml"
    )


def test_a_module_is_in_one_layer_only() -> None:
    names = [m.strip() for m in _layer_modules()]
    assert len(names) == len(set(names))


def test_no_module_imports_itself_back() -> None:
    """No import cycles at all among the project's modules (lazy imports included), beyond the
    sibling-only check of the contracts."""
    import grimp

    graph = grimp.build_graph("workflows", "store", "activities", "conveyor", cache_dir=None)
    modules = sorted(graph.modules)
    edges = {m: sorted(graph.find_modules_directly_imported_by(m) & graph.modules) for m in modules}
    # Tarjan's strongly connected components, iteratively.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    for root in modules:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            if i < len(edges[node]):
                work.append((node, i + 1))
                nxt = edges[node][i]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    cycles.append(sorted(group))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    assert cycles == [], f"modules importing each other: {cycles}"
