"""The code's shape, read from its own imports: features on a shared core, layered inside, and
providers named in one place. A change that breaks the shape fails here, naming the import."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from meterway.proxy.providers import REGISTRY

PACKAGE = Path(__file__).resolve().parents[2] / "functions" / "meterway"
FEATURES = ("accounts", "ledger", "analytics", "exports", "proxy")
# Layers inside a feature, lowest first: a module imports its own layer or lower ones only.
LAYERS = ("models", "dal", "logic", "handlers")


def modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        yield ".".join(part for part in parts if part != "__init__"), path


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("meterway"):
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("meterway")}
    return found


def place(module: str) -> tuple[str | None, str | None]:
    """(feature or "core"…, layer) of a module name; the layer of a feature's top modules is None."""
    parts = module.split(".")[1:]
    area = parts[0] if parts else None
    layer = next((part for part in parts[1:] if part in LAYERS), None)
    if area == "proxy" and len(parts) > 1 and parts[1] in ("providers", "formats", "translate"):
        layer = "logic"  # providers, wire formats and translations are pure logic: no I/O of their own
    return area, layer


IMPORTS = [(module, imported) for module, path in modules() for imported in sorted(imports(path))]


def test_the_core_imports_no_feature():
    offending = [
        (module, imported)
        for module, imported in IMPORTS
        if place(module)[0] == "core" and place(imported)[0] not in ("core", None)
    ]
    assert offending == []


@pytest.mark.parametrize("feature", FEATURES)
def test_no_layer_imports_one_above_it(feature):
    # Of its own feature or another: data access never imports logic, logic never a handler.
    offending = []
    for module, imported in IMPORTS:
        (area, layer), (_, target_layer) = place(module), place(imported)
        if area != feature or layer is None or target_layer is None:
            continue
        if LAYERS.index(target_layer) > LAYERS.index(layer):
            offending.append((module, imported))
    assert offending == []


def test_features_depend_on_each_other_one_way_only():
    edges = {
        (place(module)[0], place(imported)[0])
        for module, imported in IMPORTS
        if place(module)[0] in FEATURES and place(imported)[0] in FEATURES and place(module)[0] != place(imported)[0]
    }
    assert {(a, b) for a, b in edges if (b, a) in edges} == set()


def test_only_the_registry_compares_against_a_provider_name():
    registry = PACKAGE / "proxy" / "providers" / "__init__.py"
    offending = []
    for _, path in modules():
        if path == registry:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                operands = [node.left, *node.comparators]
                names = {o.value for o in operands if isinstance(o, ast.Constant) and o.value in REGISTRY}
                offending += [f"{path.relative_to(PACKAGE)}:{node.lineno} compares with {name!r}" for name in names]
    assert offending == []
