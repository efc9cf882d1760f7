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
    assert {f"{CORE}.networks.models", f"{CORE}.training.config"} <= graph["src_train.trainer"]
    assert f"{CORE}.training.config" in graph["napari_medsynth._widgets.training"]
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


# The core's rooms, and the rooms each may import (besides itself and the core's flat modules).
ROOMS = {
    "files": set(),
    "preprocessing": {"files"},
    "evaluation": {"files"},
    "simulation": {"files"},
    "training": {"files"},
    "networks": {"files", "preprocessing"},
    "synthesis": {"files", "preprocessing", "evaluation", "networks"},
}
FLAT = {"version", "choices", "errors", "console", "fields"}


def _room(module: str) -> str | None:
    """The room of a core module (None: a flat module, or the core package itself)."""
    parts = module[len(CORE) + 1:].split(".") if module.startswith(CORE + ".") else []
    return parts[0] if len(parts) > 1 or (parts and parts[0] in ROOMS) else None


def test_the_core_is_a_handful_of_flat_modules_and_its_rooms():
    core = ROOT / "napari_medsynth" / "core"
    assert {path.stem for path in core.glob("*.py")} - {"__init__"} == FLAT
    assert {path.name for path in core.iterdir() if path.is_dir() and path.name != "__pycache__"} == set(ROOMS)
    for room in ROOMS:  # each room opens with what it holds and what it may import
        assert len(ast.get_docstring(ast.parse((core / room / "__init__.py").read_text())) or "") > 60, room


def test_each_room_imports_only_the_rooms_below_it():
    graph = import_graph()
    breaches = set()
    for module, targets in graph.items():
        if not _is_core(module):
            continue
        room = _room(module)
        allowed = set(ROOMS) if room is None and module == CORE else ({room} | ROOMS[room] if room else set())
        for target in targets:
            if _is_core(target) and target != CORE and _room(target) is not None and _room(target) not in allowed:
                breaches.add((module, target))
    assert breaches == set()


def test_the_flat_modules_import_no_room():
    graph = import_graph()
    flat = {f"{CORE}.{name}" for name in FLAT}
    assert {(m, t) for m in flat for t in graph[m] if _is_core(t) and _room(t) is not None} == set()


# The plugin's own floors: each module, and the plugin modules it may import (besides the core). The
# layer helpers are the ground floor; the widgets build on them; the demo and the command line on top.
PLUGIN = "napari_medsynth"
PLUGIN_FLOORS = {
    "_layer_metadata": set(), "_napari_adapter": set(), "_widgets._settings": set(), "_widgets.requests": set(),
    "_widgets.loss_plot": set(),
    "_layers": {"_layer_metadata"},
    "_reader": {"_layers"}, "_writer": {"_layers", "_layer_metadata"}, "_sample_data": {"_layers", "_reader"},
    "_widgets": {"*widgets"}, "demo": {"_layers", "_napari_adapter"}, "cli": {"demo"},
}
WIDGETS_MAY_IMPORT = {"_layer_metadata", "_layers", "_napari_adapter", "_reader"}  # and one another


def test_the_plugin_modules_keep_their_floors():
    graph = import_graph()
    breaches = set()
    for module, targets in graph.items():
        if not module.startswith(PLUGIN + ".") or _is_core(module):
            continue
        name = module[len(PLUGIN) + 1:]
        widget = name.startswith("_widgets.") and name not in PLUGIN_FLOORS
        allowed = WIDGETS_MAY_IMPORT | {"_widgets"} if widget else PLUGIN_FLOORS.get(name)
        assert allowed is not None, f"{module}: a new plugin module: give it its floor in PLUGIN_FLOORS"
        for target in targets:
            inner = target[len(PLUGIN) + 1:] if target.startswith(PLUGIN + ".") else None
            if inner is None or _is_core(target):
                continue
            ok = inner in allowed or (inner.startswith("_widgets") and ("_widgets" in allowed or "*widgets" in allowed))
            if not ok:
                breaches.add((module, target))
    assert breaches == set()


# The entry points of a synthesis: each runs it through the one SynthesisJob, none assembles it by hand.
ENTRY_POINTS = ("napari_medsynth.cli", "napari_medsynth.demo", "napari_medsynth.core.synthesis.folder",
                "napari_medsynth._widgets.synthesis_single", "napari_medsynth._widgets.synthesis_compare",
                "src_train.evaluate")
ENGINE = {"synthesize", "synthesis_stages", "preview_volume", "reconstruct_volume"}


def _names_imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            names.update(f"{node.module or ''}:{alias.name}" for alias in node.names)
    return names


def test_every_entry_point_runs_the_synthesis_job_and_no_engine_by_hand():
    modules = _modules()
    for entry in ENTRY_POINTS:
        names = _names_imported(modules[entry])
        engine = {name for name in names if name.split(":")[1] in ENGINE}
        assert engine == set(), f"{entry} assembles a synthesis by hand: {engine}"
    job_users = {entry for entry in ENTRY_POINTS if any(
        name.endswith(("synthesis.job:SynthesisJob", "synthesis.job:synthesis_phases", "job:SynthesisJob",
                       "job:synthesis_phases")) for name in _names_imported(modules[entry]))}
    assert job_users == set(ENTRY_POINTS)
