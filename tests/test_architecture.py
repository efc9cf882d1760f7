"""Layers that point one way: the import graph of ``napari_medsynth`` and ``src_train``, read from
the source (function-local imports included)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("napari_medsynth", "src_train")
CORE = "napari_medsynth.core"


def _modules() -> dict[str, Path]:
    """Every module of the two packages by dotted name (a package by its own name)."""
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def import_graph() -> dict[str, set[str]]:
    """module -> the modules of the two packages it imports, anywhere in its source."""
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                for alias in node.names:  # "from pkg import module" imports the module
                    targets.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
        internal = set()
        for target in targets:  # "import a.b.c" of a module, or the nearest module that holds the name
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                internal.add(target)
        graph[name] = internal
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in graph[node]:
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def _is_core(module: str) -> bool:
    return module == CORE or module.startswith(CORE + ".")


def test_the_graph_is_read_from_the_source():
    graph = import_graph()
    assert {"napari_medsynth.core.models", "napari_medsynth.core.train_config"} <= graph["src_train.trainer"]
    assert "napari_medsynth.core.train_config" in graph["napari_medsynth._widgets.training"]
    assert "src_train.run" in graph["src_train.cli"]  # a function-local import counts
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_cycles():
    assert _cycles(import_graph()) == []


def test_core_imports_neither_the_plugin_nor_src_train():
    leaks = {(m, t) for m, targets in import_graph().items() if _is_core(m) for t in targets
             if not _is_core(t)}
    assert leaks == set()


def test_the_plugin_never_imports_src_train():
    leaks = {(m, t) for m, targets in import_graph().items() if m.startswith("napari_medsynth")
             for t in targets if t.startswith("src_train")}
    assert leaks == set()
