"""The product and its test double stay apart: neither package imports the other.

``collector`` is what users run; ``binance_simulator`` is an offline Binance for tests,
benchmarks and demos, left out of the production image. If the product imported the
simulator, the image would break; if the simulator imported the product, it would test
the product against itself.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def imported_packages(package: str) -> dict[str, set[str]]:
    """{module file: top-level packages it imports}, relative imports resolved to ``package``."""
    found = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                names.add(package if node.level else (node.module or "").split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


@pytest.mark.parametrize(("package", "forbidden"), [
    ("collector", "binance_simulator"), ("binance_simulator", "collector")])
def test_neither_package_imports_the_other(package: str, forbidden: str) -> None:
    modules = imported_packages(package)
    assert len(modules) > 5  # the walk found the package
    assert not [name for name, imports in modules.items() if forbidden in imports]


def test_the_walk_sees_imports_of_every_form() -> None:
    """A check that cannot fail is no check: it does see imports of the other package."""
    tests = imported_packages("tests")
    assert any("binance_simulator" in imports for imports in tests.values())
    assert any("collector" in imports for imports in tests.values())


def module_imports(package: str) -> dict[str, set[str]]:
    """{module: modules of ``package`` it imports}, ``TYPE_CHECKING`` imports included."""
    paths = {path.stem: path for path in (ROOT / package).glob("*.py")}
    found = {}
    for name, path in paths.items():
        imported = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.level or node.module == package):
                if node.module in (None, package):
                    imported |= {alias.name for alias in node.names}
                else:
                    imported.add(node.module.removeprefix(package + "."))
            elif isinstance(node, ast.Import):
                imported |= {alias.name.removeprefix(package + ".") for alias in node.names
                             if alias.name.startswith(package + ".")}
        found[name] = imported & set(paths) - {name}
    return found


def cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle in ``graph`` (its modules in order), or [] when there is none."""
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> list[str]:
        if name in path:
            return path[path.index(name):] + [name]
        if name in done:
            return []
        for imported in sorted(graph[name]):
            found = visit(imported, path + [name])
            if found:
                return found
        done.add(name)
        return []

    for name in sorted(graph):
        found = visit(name, [])
        if found:
            return found
    return []


def test_the_simulator_has_no_import_cycle() -> None:
    """A cycle, even one hidden under ``TYPE_CHECKING``, means two modules are one concept
    split in two, or a helper lives in the wrong place: neither can be read or changed
    alone, and the import order starts to matter."""
    graph = module_imports("binance_simulator")
    assert "stream_names" in graph["faults"]  # the walk sees relative imports
    assert cycle(graph) == []


def test_the_cycle_check_finds_a_cycle() -> None:
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) == []
