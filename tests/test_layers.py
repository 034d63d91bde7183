"""The layers contract (docs/architecture.md, "Layers"): imports point down only, and nothing
imports in a circle. Every import counts, function-local and type-only ones too: a function-local
import is how the cycle ``finetune.run -> models -> toy -> toy.build -> finetune.run`` once hid.

The layers are written here, once, per subpackage; docs/architecture.md describes them. Known
violations, if any, are listed below, each with the move that removes it. The test fails on any
new violation, and on a listed one that no longer exists (delete it from the list then).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "finetune_safety"
ARCHITECTURE = PACKAGE.parent / "docs" / "architecture.md"

#: Bottom to top, by top-level module or subpackage. A module may import its own layer and the
#: layers below it.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("finetune_safety", "values", "errors", "_util"),  # leaves
    ("models",),  # targets, templates, endpoints, precision
    ("judges", "benchmarks"),  # verdicts and prompts
    ("finetune",),  # training, presets, recipes
    ("config",),  # the settings, read against what the layers below offer
    ("catalog",),  # spec -> files -> target; the toy and smol
    ("evaluation",),  # pipeline, store, case, statistics
    ("report",),  # records, aggregate, tables, files, diff
    ("suite",),  # the pytest side
    ("plugin", "gate", "cli", "__main__"),  # what users touch
    ("testing",),  # test support for users and for tests/; the library never imports it
)

#: (importer, imported) pairs that break the layering today, and what removes each.
KNOWN_VIOLATIONS: frozenset[tuple[str, str]] = frozenset()


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(module: str, path: Path) -> Iterator[str]:
    """Every finetune_safety module ``module`` imports, wherever the import statement is."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                yield sub if sub in MODULES else base


def _graph() -> dict[str, set[str]]:
    return {
        module: {i for i in _imports(module, path) if i in MODULES and i != module}
        for module, path in MODULES.items()
    }


def _short(module: str) -> str:
    return module.removeprefix("finetune_safety.") if module != "finetune_safety" else module


def _layer(module: str) -> int:
    unit = _unit(module)
    for rank, names in enumerate(LAYERS):
        if unit in names:
            return rank
    raise LookupError(module)


def _violations() -> set[tuple[str, str]]:
    return {
        (_short(a), _short(b))
        for a, imported in _graph().items()
        for b in imported
        if _layer(b) > _layer(a)
    }


def test_every_module_has_a_layer() -> None:
    missing = []
    for module in MODULES:
        try:
            _layer(module)
        except LookupError:
            missing.append(module)
    assert not missing, f"place these modules in LAYERS: {missing}"


def test_imports_point_down_only() -> None:
    new = _violations() - KNOWN_VIOLATIONS
    assert not new, "imports that point up a layer: " + ", ".join(
        f"{a} -> {b}" for a, b in sorted(new)
    )


def test_known_violations_still_exist() -> None:
    """A fixed violation leaves the list, so the list only ever shrinks."""
    gone = KNOWN_VIOLATIONS - _violations()
    assert not gone, f"fixed, remove from KNOWN_VIOLATIONS: {sorted(gone)}"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            connect(module)
    return found


def _unit(module: str) -> str:
    return _short(module).split(".")[0]


def test_no_import_cycles() -> None:
    """No cycle at all, inside a package or across packages: a face imports its modules, and a
    module never imports its own package's face."""
    graph = {
        a: {b for b in imported if (_short(a), _short(b)) not in KNOWN_VIOLATIONS}
        for a, imported in _graph().items()
    }
    cycles = _cycles(graph)
    assert not cycles, "import cycles: " + "; ".join(", ".join(map(_short, c)) for c in cycles)


def _faces() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("__init__.py") if p.parent != PACKAGE)


def test_every_face_only_re_exports() -> None:
    """A subpackage's ``__init__.py`` holds imports, ``__all__`` and (for the lazy faces of the
    toy and smol) a module ``__getattr__``: its code lives in modules."""
    for face in _faces():
        tree = ast.parse(face.read_text(encoding="utf-8"))
        names = {
            t.id
            for node in tree.body
            if isinstance(node, ast.Assign | ast.AnnAssign)
            for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
            if isinstance(t, ast.Name)
        }
        assert "__all__" in names, f"{face}: no __all__"
        for node in tree.body:
            allowed = (ast.Import, ast.ImportFrom, ast.Assign, ast.AnnAssign, ast.If, ast.Expr)
            lazy = isinstance(node, ast.FunctionDef) and node.name == "__getattr__"
            assert isinstance(node, allowed) or lazy, f"{face}:{node.lineno}: not a re-export"


def test_no_face_hides_a_module() -> None:
    """A face that exported a name of one of its own modules (``run``, ``diff``) would shadow
    that module as an attribute, and ``monkeypatch.setattr("pkg.module.x", ...)`` would miss."""
    for face in _faces():
        modules = {p.stem for p in face.parent.iterdir() if p.suffix == ".py" or p.is_dir()}
        exported = set(_all(face))
        assert not exported & modules, f"{face}: exports module names {exported & modules}"


def _all(face: Path) -> list[str]:
    for node in ast.parse(face.read_text(encoding="utf-8")).body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            assert isinstance(node, ast.Assign)
            return [ast.literal_eval(e) for e in getattr(node.value, "elts", [])]
    return []


def test_the_top_level_keeps_few_modules() -> None:
    modules = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(modules) <= 6, modules


def test_architecture_doc_names_every_layer() -> None:
    """docs/architecture.md describes the layers written here, in this order."""
    text = ARCHITECTURE.read_text(encoding="utf-8").split("## Layers", 1)[1].split("\n## ")[0]
    positions = [
        min(m.start() for name in names if (m := re.search(rf"\b{re.escape(name)}\b", text)))
        for names in LAYERS[1:]
    ]
    assert positions == sorted(positions)


def test_the_contract_sees_function_local_imports() -> None:
    """The cycle this contract removed closed through a function-local import; a parser that
    missed those would pass the contract vacuously."""
    assert "finetune_safety.catalog.toy" in _graph()["finetune_safety.catalog.resolution"]
    assert "finetune_safety.finetune.run" in _graph()["finetune_safety.catalog.toy.build"]
