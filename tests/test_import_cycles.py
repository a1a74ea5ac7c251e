"""No import cycles inside keras_facehallu: a static check of the module-level imports.

Every module of the package is parsed with :mod:`ast` (nothing is imported). An edge ``a -> b``
is an import of package module ``b`` that runs when ``a`` is imported: a statement at module level,
also inside ``if``/``try``/``with`` blocks and class bodies, but not inside functions (lazy imports)
and not under ``if TYPE_CHECKING:`` or ``if __name__ == "__main__":``. ``from pkg import name``
points at ``pkg.name`` when that is a module, else at ``pkg``. The package ``__init__`` that Python
runs before a submodule is not an edge by itself (only an import that names the package is).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "keras_facehallu"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE


def _module_names(root: Path = ROOT) -> dict[str, Path]:
    """``{"keras_facehallu.face.align": path, ...}`` of every ``.py`` file under ``root``."""
    names = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _skipped_on_import(test: ast.expr) -> bool:
    """``if TYPE_CHECKING:`` and ``if __name__ == "__main__":`` do not run on import."""
    if isinstance(test, ast.Name | ast.Attribute):
        return getattr(test, "id", getattr(test, "attr", None)) == "TYPE_CHECKING"
    return (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
        and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in test.comparators)
    )


def _imports(body: list[ast.stmt], lazy: bool = False):
    """Import statements that run on import: not in functions (unless ``lazy``), never in
    ``TYPE_CHECKING`` or ``__main__`` blocks."""
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            if lazy:
                yield from _imports(node.body, lazy)
        elif isinstance(node, ast.If):
            if not _skipped_on_import(node.test):
                yield from _imports(node.body, lazy)
            yield from _imports(node.orelse, lazy)
        elif isinstance(node, ast.ClassDef | ast.With | ast.AsyncWith | ast.For | ast.While):
            yield from _imports(node.body, lazy)
            yield from _imports(getattr(node, "orelse", []), lazy)
        elif isinstance(node, ast.Try | getattr(ast, "TryStar", ast.Try)):
            for block in (node.body, node.orelse, node.finalbody):
                yield from _imports(block, lazy)
            for handler in node.handlers:
                yield from _imports(handler.body, lazy)


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of ``name`` that is a package module (``None`` outside the package)."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def import_graph(root: Path = ROOT, lazy: bool = False) -> dict[str, dict[str, int]]:
    """``{module: {imported package module: line of the first such import}}``; with ``lazy``
    also the imports inside functions."""
    modules = _module_names(root)
    graph: dict[str, dict[str, int]] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        edges: dict[str, int] = {}
        for node in _imports(ast.parse(path.read_text(), filename=str(path)).body, lazy):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = name.split(".")
                    anchor = anchor if is_package else anchor[:-1]
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, *([base] if base else [])])
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    targets.append(full if full in modules else base)
            for target in targets:
                known = _known(target, modules)
                if known is not None and known not in edges:
                    edges[known] = node.lineno
        graph[name] = edges
    return graph


def cyclic_groups(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected groups of modules that hold a cycle (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, {}):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1 or node in graph.get(node, {}):
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(groups)


def find_cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """One shortest cycle ``[a, b, ..., a]`` for each group of :func:`cyclic_groups`."""
    cycles = []
    for group in cyclic_groups(graph):
        members, start = set(group), group[0]
        # Shortest path from start back to start inside the group (breadth first).
        parents: dict[str, str] = {}
        frontier, found = [start], None
        while frontier and found is None:
            following = []
            for node in frontier:
                for nxt in sorted(graph[node]):
                    if nxt == start:
                        found = node
                        break
                    if nxt in members and nxt not in parents:
                        parents[nxt] = node
                        following.append(nxt)
                if found is not None:
                    break
            frontier = following
        path = [start]
        node = found
        while node != start:
            path.append(node)
            node = parents[node]
        cycles.append([start, *reversed(path[1:]), start])
    return sorted(cycles)


def _describe(cycle: list[str], graph: dict[str, dict[str, int]], modules: dict[str, Path]) -> str:
    steps = [
        f"  {a} ({modules[a].relative_to(ROOT.parent)}:{graph[a][b]}) imports {b}"
        for a, b in zip(cycle, cycle[1:], strict=False)
    ]
    return " -> ".join(cycle) + "\n" + "\n".join(steps)


def test_the_package_has_no_import_cycles():
    graph = import_graph()
    assert len(graph) > 20 and sum(map(len, graph.values())) > 20, "the scan found no imports"
    cycles = find_cycles(graph)
    modules = _module_names()
    assert not cycles, f"{len(cycles)} import cycle(s) inside {PACKAGE}:\n" + "\n".join(
        _describe(c, graph, modules) for c in cycles
    )


# Cycles through imports inside functions (lazy imports, run on first call) are failures too:
# issue 11 asked that the last ones go (presets <-> models, gan <-> train_step_*).
KNOWN_LAZY_CYCLES: list[set[str]] = []


def test_no_new_cycles_through_lazy_imports():
    graph = import_graph(lazy=True)
    modules = _module_names()
    new = [g for g in cyclic_groups(graph) if not any(set(g) <= k for k in KNOWN_LAZY_CYCLES)]
    cycles = [c for c in find_cycles(graph) if any(set(c) <= set(g) for g in new)]
    described = [_describe(c, graph, modules) for c in cycles]
    assert not new, (
        f"import cycle(s) inside {PACKAGE} through imports in functions, in groups {new}:\n"
        + "\n".join(described)
    )


def test_presets_import_no_model():
    """The preset code is a leaf: the models import it, it finds their classes through Keras."""
    lazy = import_graph(lazy=True)
    assert "keras_facehallu.presets" in lazy["keras_facehallu.models.cascade"]
    assert not [m for m in lazy["keras_facehallu.presets"] if m.startswith(f"{PACKAGE}.models")]


def test_the_checker_finds_a_cycle_and_tells_lazy_imports_apart(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from . import b\n")
    (pkg / "a.py").write_text("from typing import TYPE_CHECKING\nfrom pkg.sub.b import f\n"
                              "if TYPE_CHECKING:\n    from pkg import c\n")
    (pkg / "sub" / "b.py").write_text(
        "import os\ntry:\n    from ..c import g\nexcept ImportError:\n    g = None\n\n"
        "def f():\n    from pkg import a\n"
    )
    (pkg / "c.py").write_text(
        "class C:\n    from .a import f\n\nif __name__ == '__main__':\n    from pkg import c\n"
    )
    graph = import_graph(pkg)
    assert graph["pkg.a"] == {"pkg.sub.b": 2}
    assert graph["pkg.sub"] == {"pkg.sub.b": 1}
    assert graph["pkg.sub.b"] == {"pkg.c": 3}  # not the lazy import in f()
    assert graph["pkg.c"] == {"pkg.a": 2}
    assert find_cycles(graph) == [["pkg.a", "pkg.sub.b", "pkg.c", "pkg.a"]]
    assert cyclic_groups(graph) == [["pkg.a", "pkg.c", "pkg.sub.b"]]
    lazy = import_graph(pkg, lazy=True)
    assert lazy["pkg.sub.b"] == {"pkg.c": 3, "pkg.a": 8}
    del graph["pkg.c"]["pkg.a"]
    assert find_cycles(graph) == []


def test_train_steps_import_nothing_back_from_the_gan():
    """The GAN chooses the backend's step module in one place; the step modules import no GAN."""
    lazy = import_graph(lazy=True)
    for backend in ("tf", "jax"):
        step = f"keras_facehallu.training.train_step_{backend}"
        assert "keras_facehallu.training.gan" not in lazy[step]
