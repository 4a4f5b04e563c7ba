"""The product and its test double stay apart: neither package imports the other.

``collector`` is what users run; ``binance_simulator`` is an offline Binance for tests,
benchmarks and demos, left out of the production image. If the product imported the
simulator, the image would break; if the simulator imported the product, it would test
the product against itself.
"""

from __future__ import annotations

import ast
import graphlib
import re
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
            module = node.module or "" if isinstance(node, ast.ImportFrom) else ""
            if isinstance(node, ast.ImportFrom) and (
                    node.level or module == package or module.startswith(package + ".")):
                if module in ("", package):  # from . import x; from collector import x
                    imported |= {alias.name for alias in node.names}
                else:
                    imported.add(module.removeprefix(package + "."))
            elif isinstance(node, ast.Import):
                imported |= {alias.name.removeprefix(package + ".") for alias in node.names
                             if alias.name.startswith(package + ".")}
        found[name] = imported & set(paths) - {name}
    return found


def cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle in ``graph`` (its modules, the first repeated at the end), or []."""
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as found:
        return list(reversed(found.args[1]))
    return []


@pytest.mark.parametrize(("package", "relative"), [
    ("binance_simulator", ("faults", "stream_names")), ("collector", ("report", "wiring")),
    ("collector", ("stream_state", "order_book"))])
def test_no_import_cycle(package: str, relative: tuple[str, str]) -> None:
    """A cycle, even one hidden under ``TYPE_CHECKING``, means two modules are one concept
    split in two, or a helper lives in the wrong place: neither can be read or changed
    alone, and the import order starts to matter."""
    graph = module_imports(package)
    importer, imported = relative
    assert imported in graph[importer]  # the walk sees this package's imports
    assert not cycle(graph)


def test_the_cycle_check_finds_a_cycle() -> None:
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) in (
        ["a", "b", "c", "a"], ["b", "c", "a", "b"], ["c", "a", "b", "c"])
    assert not cycle({"a": {"b"}, "b": set()})


def test_the_records_depend_on_nothing() -> None:
    """Every layer reads the records, so they import nothing of ours but the errors a record
    may carry (which import nothing at all): a record module that imported a layer would
    drag it, and its dependencies, into every other."""
    graph = module_imports("collector")
    assert graph["records"] == {"errors"}
    assert graph["errors"] == set()


@pytest.mark.parametrize("front_end", ["exporter", "report", "exposition", "server"])
def test_front_ends_read_the_source_interface_only(front_end: str) -> None:
    """The collector and the report read Snapshot records through the Source interface: they
    cannot tell REST from streams but where a family exists in one mode alone, so a feature
    is written once for both. Only the wiring knows the implementations."""
    graph = module_imports("collector")
    behind = {"rest_source", "stream_source", "stream_state", "upstream", "cache", "binance",
              "stream_client", "order_book"}
    assert not graph[front_end] & behind


def test_the_module_map_lists_every_module_in_the_order_data_flows() -> None:
    """collector/__init__.py opens with a map for newcomers, one line a module, in the order
    data flows; it stays true: every module is on it, and imports only modules above it."""
    import collector  # pylint: disable=import-outside-toplevel

    assert collector.__doc__ is not None
    listed = [name for line in collector.__doc__.splitlines() if line.startswith("* ``")
              for name in re.findall(r"``(\w+)``: ", line)]
    graph = module_imports("collector")
    assert sorted(listed) == sorted(set(graph) - {"__init__"})
    for position, name in enumerate(listed):
        assert graph[name] <= set(listed[:position]) | {"__init__"}, name
