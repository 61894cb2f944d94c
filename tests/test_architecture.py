"""The package's shape, checked: imports run one way (docs/ARCHITECTURE.md), no cycle, and the
core knows no I/O library.

Every import statement counts — module level, inside functions, under ``TYPE_CHECKING`` — read
from the source with :mod:`ast`, so a cycle cannot hide behind a late import.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "milterfilters"

#: a package may import only packages of a lower rank (and itself)
RANKS = {
    "core": 0,
    "mail": 1,
    "dns": 1,
    "config": 2,
    "relay": 3,
    "spf": 3,
    "auth": 3,
    "classifier": 3,
    "builtin": 3,
    "api": 4,
    "metrics": 4,
    "milter": 5,
    "check": 5,
    "cli": 6,
    "__init__": 7,
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE_DIR.rglob("*.py"))}


def imports_of(module: str) -> Iterator[tuple[str, int]]:
    """(imported module, line) for every import statement in ``module``; ``from X import Y``
    counts as an import of ``X.Y`` when that is a module, else of ``X``."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                yield (sub if sub in MODULES else target), node.lineno


def internal_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for module in MODULES:
        for target, _ in imports_of(module):
            if target in MODULES and target != module:
                graph[module].add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path (first node repeated at the end), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def room(module: str) -> str:
    """The package (or top-level module) a module lives in: ``milterfilters.auth.arc`` → auth."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_module_lives_in_a_room_with_a_rank() -> None:
    assert {room(m) for m in MODULES} <= set(RANKS), set(map(room, MODULES)) - set(RANKS)


def test_no_import_cycle_between_modules() -> None:
    assert find_cycle(internal_graph()) is None


def test_no_import_cycle_between_packages() -> None:
    rooms: dict[str, set[str]] = {}
    for module, targets in internal_graph().items():
        rooms.setdefault(room(module), set()).update(room(t) for t in targets if room(t) != room(module))
    assert find_cycle(rooms) is None


def test_imports_run_one_way() -> None:
    wrong = [
        f"{MODULES[module].relative_to(PACKAGE_DIR.parent)}:{line} imports {target}"
        for module in MODULES
        for target, line in imports_of(module)
        if target in MODULES and room(target) != room(module) and RANKS[room(target)] >= RANKS[room(module)]
    ]
    assert wrong == []


#: standard-library modules that do I/O on their own: the core leaves them to the shells
IO_MODULES = {
    "socket",
    "subprocess",
    "ssl",
    "http",
    "urllib",
    "select",
    "selectors",
    "asyncio",
    "multiprocessing",
}


def test_core_imports_only_the_standard_library_and_itself() -> None:
    wrong = []
    for module in MODULES:
        if room(module) != "core":
            continue
        for target, line in imports_of(module):
            top = target.split(".")[0]
            if target.startswith("milterfilters.core") or top == "__future__":
                continue
            if top in sys.stdlib_module_names and top not in IO_MODULES:
                continue
            wrong.append(f"{module}:{line} imports {target}")
    assert wrong == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_module_says_what_it_is_for(module: str) -> None:
    tree = ast.parse(MODULES[module].read_text())
    assert ast.get_docstring(tree), f"{module} has no module docstring"


def test_the_checker_finds_a_cycle_and_a_wrong_way_import() -> None:
    # the checks above must be able to fail
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    assert RANKS["core"] < RANKS["auth"] < RANKS["milter"]


@pytest.mark.parametrize("package", sorted(p.parent.name for p in PACKAGE_DIR.glob("*/__init__.py")))
def test_every_package_docstring_maps_its_modules(package: str) -> None:
    doc = ast.get_docstring(ast.parse((PACKAGE_DIR / package / "__init__.py").read_text())) or ""
    modules = sorted(p.stem for p in (PACKAGE_DIR / package).glob("*.py") if p.stem != "__init__")
    unnamed = [m for m in modules if f"``{m}``" not in doc and f":mod:`.{m}`" not in doc]
    assert unnamed == [], f"milterfilters/{package}/__init__.py does not name {unnamed}"
