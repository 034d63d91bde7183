"""The layers contract (DESIGN.md, "Layers"): imports point down only, and nothing imports in a
circle. Every import counts, function-local and type-only ones too: a function-local import is
how the cycle ``finetune.run -> models -> toy -> toy.build -> finetune.run`` hid.

Known violations, if any, are listed below, each with the move that removes it. The test fails
on any new violation, and on a listed one that no longer exists (delete it from the list then).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "finetune_safety"

#: Bottom to top. A module may import its own layer and the layers below it.
LAYERS: tuple[tuple[str, ...], ...] = (
    # leaves
    (
        "finetune_safety",
        "values",
        "errors",
        "templates",
        "stats",
        "metrics",
        "endpoint",
        "resources",
        "registry",
        "progress",
        "locks",
        "buildonce",
        "textfile",
        "outputs",
        "threads",
        "case",
        # the toy's names, for settings and training below the toy's builder
        "toy.names",
        "smol.names",
    ),
    ("models",),
    ("judges", "benchmark", "overrefusal"),
    ("finetune",),
    # the embedded models: the toy, and smol (whose alignment data extends the toy's corpus)
    ("toy", "smol"),
    ("catalog",),
    ("store", "evaluate"),
    # session, policy, report (config: the settings the session is built from, declared in
    # settings and checked by validate; project: the CLI's project, its table and cache)
    ("suite", "policy", "report", "snapshot", "config", "settings", "validate", "project", "diff"),
    (
        "plugin",
        "cli",
        "cli_finetune",
        "hooks",
        "hookspecs",
        "progress_pytest",
        "gate",
        "render",
        "reproduce",
    ),
    # test support for users and for tests/; the library never imports it
    ("testing",),
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
    short = _short(module)
    for rank, names in enumerate(LAYERS):
        if short in names or short.split(".")[0] in names:
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


def test_no_import_cycles_besides_the_known_violations() -> None:
    """A package and its own submodules may import each other (``models`` builds an
    ``HFTarget``, ``models.hf`` uses ``Decoding``); a cycle that leaves a package may not."""
    graph = {
        a: {b for b in imported if (_short(a), _short(b)) not in KNOWN_VIOLATIONS}
        for a, imported in _graph().items()
    }
    crossing = [c for c in _cycles(graph) if len({_unit(m) for m in c}) > 1]
    assert not crossing, "import cycles: " + "; ".join(", ".join(map(_short, c)) for c in crossing)


def test_the_contract_sees_function_local_imports() -> None:
    """The cycle this contract removed closed through a function-local import; a parser that
    missed those would pass the contract vacuously."""
    assert "finetune_safety.toy" in _graph()["finetune_safety.catalog"]
    assert "finetune_safety.finetune.run" in _graph()["finetune_safety.toy.build"]
