"""The package's layers: which parts may import which, and no cycles between them.

Read from the source (every import statement, module-level or inside a function), so a
lazy import counts as much as a top-level one.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import jepakit

ROOT = Path(jepakit.__file__).parent
#: Component kinds: they know configs, the registry, layers and each other's contracts only.
PARTS = {"masks", "encoders", "predictors", "conditioners", "text", "targets", "losses", "layers", "transforms"}
#: What each unit must never import.
FORBIDDEN = {
    **{
        part: {"methods", "experiment", "train", "data", "eval", "export", "runs", "recipes", "cli", "api"}
        for part in PARTS
    },
    "methods": {"train", "data", "eval", "export", "runs", "experiment", "recipes", "cli", "api"},
    "data": {"methods", "train", "eval", "export", "runs", "experiment", "recipes", "cli"},
    "checkpoint": {"methods", "train", "data", "eval", "export", "runs", "experiment", "recipes", "cli"},
    "eval": {"train", "export", "recipes", "cli"},
    "runs": {"train", "eval", "export", "recipes", "cli"},
    "export": {"train", "eval", "recipes", "cli"},
    "train": {"export", "runs", "recipes", "cli"},
    # the trainer and the frozen teacher read weights and hub sources: neither may reach back to them
    "weights": {"methods", "train", "data", "eval", "export", "runs", "experiment", "recipes", "cli", "api"},
    "hub": {"methods", "train", "data", "eval", "export", "runs", "experiment", "recipes", "cli", "api", "checkpoint"},
}


#: Config values, the registry of their classes and the recipes' declared departures (what the registry
#: holds of a recipe) are one layer: each needs the others by design.
CORE = {"config": "core", "registry": "core", "departures": "core"}


def unit(module: str) -> str:
    """The layer a dotted module path inside jepakit belongs to (its first component)."""
    first = module.split(".")[0]
    return CORE.get(first, first)


def imports() -> dict[str, set[str]]:
    """unit -> the units its modules import (the package root's re-exports left out)."""
    graph: dict[str, set[str]] = {}
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT).with_suffix("")
        if rel.parts == ("__init__",):
            continue
        package = rel.parts[:-1]
        here = unit(".".join(rel.parts))
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.ImportFrom):
                if node.level:  # relative: resolve against this module's package
                    base = list(package[: len(package) - node.level + 1]) if node.level > 1 else list(package)
                    if rel.name == "__init__" and node.level == 1:
                        base = list(rel.parts[:-1])
                    mod = ".".join(base + ([node.module] if node.module else []))
                    targets = [mod] if node.module else [".".join([*base, a.name]) for a in node.names]
                elif node.module and node.module.startswith("jepakit."):
                    targets = [node.module[len("jepakit.") :]]
            elif isinstance(node, ast.Import):
                targets = [a.name[len("jepakit.") :] for a in node.names if a.name.startswith("jepakit.")]
            for t in targets:
                if t and unit(t) != here:
                    graph.setdefault(here, set()).add(unit(t))
    return graph


GRAPH = imports()


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_a_layer_imports_nothing_above_it(layer):
    assert (ROOT / layer).is_dir() or (ROOT / f"{layer}.py").is_file(), f"no module of {layer!r} found"
    bad = GRAPH.get(layer, set()) & FORBIDDEN[layer]
    assert not bad, f"{layer} imports {sorted(bad)}"


def test_no_cycles_between_layers():
    graph = {k: v - {"cli"} for k, v in GRAPH.items() if k != "cli"}  # the command line sits on top of all
    seen: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        if seen.get(node) == 1:
            raise AssertionError("import cycle: " + " -> ".join([*path[path.index(node) :], node]))
        if seen.get(node) == 2:
            return
        seen[node] = 1
        for nxt in sorted(graph.get(node, ())):
            visit(nxt, [*path, node])
        seen[node] = 2

    for node in sorted(graph):
        visit(node, [])


#: Attributes of one particular method (JEPA) that the engine must never read.
METHOD_SPECIFIC = re.compile(
    r"\.(masker|tokenizer|target_encoder|target_updater|conditioner|text_encoder|predictor|encoder|loss_fn)\b"
    r"|update_target|uses_text|(?<![\w-])JEPA\b"
)


@pytest.mark.parametrize("module", ["train/trainer.py", "train/pipeline.py"])
def test_the_engine_reads_no_attribute_of_a_particular_method(module):
    code = [line for line in (ROOT / module).read_text().splitlines() if not line.lstrip().startswith("#")]
    found = [line.strip() for line in code if METHOD_SPECIFIC.search(line)]
    assert not found, f"{module} reads method-specific attributes: {found}"
