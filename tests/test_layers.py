"""The import layers of the tree, checked on the source (every import: top-level, lazy, TYPE_CHECKING).

    trainer  <-  state  <-  service, worker  <-  cli

A package may import its own modules and the layers below it, never one above or beside it
(``service`` and ``worker`` share only ``state``). Inside ``service/inference`` and
``trainer/export`` no two modules may import each other, directly or round a longer loop: a
cycle there is the sign of a concept with two owners.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ALLOWED: dict[str, set[str]] = {
    "trainer": set(),
    "state": {"trainer"},
    "service": {"state", "trainer"},
    "worker": {"state", "trainer"},
    "cli": {"service", "worker", "state", "trainer"},
}
ACYCLIC = ["service/inference", "trainer/export"]


def _module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, root: Path = ROOT) -> set[str]:
    """Absolute names of every module ``path`` imports (relative imports resolved)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    name = _module_name(path, root)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return found


def _sources(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_no_upward_or_sideways_import(package: str) -> None:
    bad = []
    for path in _sources(package):
        for name in _imports(path):
            top = name.split(".")[0]
            if top in ALLOWED and top != package and top not in ALLOWED[package]:
                bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not bad, "imports against the layers:\n" + "\n".join(sorted(set(bad)))


@pytest.mark.parametrize("folder", ACYCLIC)
def test_no_import_cycle_inside(folder: str) -> None:
    modules = {_module_name(path): path for path in _sources(folder)}
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        graph[name] = {imported for imported in _imports(path) if imported in modules and imported != name}
    cycle = _find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_checker_sees_lazy_imports_and_cycles(tmp_path: Path) -> None:
    """The checker itself: a lazy upward import and a two-module loop are both found."""
    source = tmp_path / "pkg" / "mod.py"
    source.parent.mkdir()
    source.write_text("def f():\n    from service.main import create_app\n    import worker.tasks\n")
    source.with_name("other.py").write_text("if False:\n    from . import mod\n")
    assert {"service.main", "worker.tasks"} <= _imports(source, tmp_path)
    assert "pkg.mod" in _imports(source.with_name("other.py"), tmp_path)
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None
