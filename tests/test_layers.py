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
