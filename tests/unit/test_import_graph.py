"""The import graph of ``src/geartrain``: no cycles among its modules, and library code does not import the CLI.

Read from the sources with :mod:`ast` (nothing is imported), so a function-level import counts like a top-level
one: it is still a dependency at run time, only a later one. Imports under ``if TYPE_CHECKING:`` do not count for
cycles (they never run); they do count for the layering rule, since a type from the CLI in library code is the
same breach.

What an import statement in module ``M`` depends on:

- ``import a.b.c`` and ``from a.b.c import name``: the module ``a.b.c``;
- ``from a.b import c`` where ``c`` is a submodule: ``a.b.c``; where ``c`` is any other name: ``a.b`` itself (its
  ``__init__`` has to have defined it, even when ``a.b`` is ``M``'s own package);
- importing a module also runs its packages' ``__init__`` first, so ``a.b.c`` brings ``a.b`` (and ``a``) along,
  except the packages that contain ``M``: Python has already started those before ``M``, so the edge says nothing.
  This is what lets a package ``__init__`` re-export from its submodules while they import each other
  (``from geartrain.bench import packets`` in ``bench/submit.py`` is an edge to ``bench.packets`` only).

Dynamic imports (``importlib.import_module``, such as the lazy names of ``geartrain/__init__.py``) are not seen.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = "geartrain"
CLI = "geartrain.cli"
CLI_ENTRY_POINTS = {"geartrain.__main__"}  # ``python -m geartrain`` is the command line


@dataclass(frozen=True, slots=True)
class Edge:
    source: str
    target: str
    path: Path
    line: int
    type_only: bool
    via: str | None = None  # the module the statement names, when ``target`` is one of its packages

    def describe(self) -> str:
        where = self.path.relative_to(SRC) if self.path.is_relative_to(SRC) else self.path
        text = f"{where}:{self.line} imports {self.target}"
        if self.via:
            text += f" (its __init__ runs before {self.via})"
        return text + (" (type only)" if self.type_only else "")


def find_modules(root: Path, package: str = PACKAGE) -> dict[str, tuple[Path, bool]]:
    """Every module of ``package`` under ``root``: its dotted name -> (source file, whether it is a package)."""
    modules: dict[str, tuple[Path, bool]] = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        is_package = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if is_package else parts)
        modules[name] = (path, is_package)
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(node: ast.AST, type_only: bool = False) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement below ``node`` (in functions and classes too), with whether it runs only for type
    checkers (the body of ``if TYPE_CHECKING:``; its ``else:`` runs)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child, type_only
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for statement in child.body:
                yield from _imports(ast.Module(body=[statement], type_ignores=[]), True)
            for statement in child.orelse:
                yield from _imports(ast.Module(body=[statement], type_ignores=[]), type_only)
        else:
            yield from _imports(child, type_only)


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:end]) for end in range(1, len(parts))]


def _targets(
    node: ast.Import | ast.ImportFrom, importer: str, is_package: bool, modules: dict[str, tuple[Path, bool]]
) -> dict[str, str | None]:
    """The modules of ``modules`` that one import statement of ``importer`` depends on (see the module docstring),
    each with the module the statement names when it is one of that module's packages."""
    direct: set[str] = set()
    if isinstance(node, ast.Import):
        direct = {alias.name for alias in node.names}
    else:
        if node.level:
            package = importer if is_package else importer.rpartition(".")[0]
            for _ in range(node.level - 1):
                package = package.rpartition(".")[0]
            base = f"{package}.{node.module}" if node.module else package
        else:
            base = node.module or ""
        for alias in node.names:
            submodule = f"{base}.{alias.name}"
            direct.add(submodule if submodule in modules else base)
    own_packages = set(_ancestors(importer))
    targets: dict[str, str | None] = {}
    for name in sorted(direct):
        for package in _ancestors(name):
            if package not in own_packages:
                targets.setdefault(package, name)
    targets.update(dict.fromkeys(direct))
    return {name: via for name, via in targets.items() if name in modules and name != importer}


def import_edges(root: Path = SRC, package: str = PACKAGE) -> list[Edge]:
    """Every import of one module of ``package`` by another, type-only ones included (and marked)."""
    modules = find_modules(root, package)
    edges = []
    for name, (path, is_package) in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node, type_only in _imports(tree):
            for target, via in sorted(_targets(node, name, is_package, modules).items()):
                edges.append(Edge(name, target, path, node.lineno, type_only, via))
    return edges


def strongly_connected_components(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (no recursion limit); components in no particular order."""
    index: dict[str, int] = {}
    lowlink: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    work: list[tuple[str, Iterator[str]]] = []  # the depth-first path: each node with its successors still to see

    def visit(node: str) -> None:
        index[node] = lowlink[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        work.append((node, iter(sorted(graph.get(node, ())))))

    for root in sorted(graph):
        if root in index:
            continue
        visit(root)
        while work:
            node, successors = work[-1]
            for successor in successors:
                if successor not in index:
                    visit(successor)
                    break
                if successor in on_stack:
                    lowlink[node] = min(lowlink[node], index[successor])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    lowlink[parent] = min(lowlink[parent], lowlink[node])
                if lowlink[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(sorted(component))
    return components


def import_cycles(edges: list[Edge]) -> list[list[str]]:
    """The modules of each cycle among the run-time imports, each cycle sorted, cycles sorted."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        if not edge.type_only:
            graph.setdefault(edge.source, set()).add(edge.target)
    return sorted(component for component in strongly_connected_components(graph) if len(component) > 1)


def describe_cycles(cycles: list[list[str]], edges: list[Edge]) -> str:
    lines = [f"{len(cycles)} import cycle(s) among the modules of src/{PACKAGE} (imports under TYPE_CHECKING aside):"]
    for cycle in cycles:
        lines.append("  " + ", ".join(cycle))
        members = set(cycle)
        lines += [
            f"      {edge.describe()}"
            for edge in edges
            if not edge.type_only and edge.source in members and edge.target in members
        ]
    return "\n".join(lines)


# ---------------------------------------------------------------------- the rules


def _in_package(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_the_modules_of_src_import_each_other_without_cycles() -> None:
    edges = import_edges()
    cycles = import_cycles(edges)
    assert not cycles, describe_cycles(cycles, edges)


def test_library_code_does_not_import_the_cli() -> None:
    """The command line builds on the library, never the other way round (the manager, security, the server and
    the clients take their settings as arguments; what the environment sets is read in ``security/environment``)."""
    offending = [
        edge.describe()
        for edge in import_edges()
        if _in_package(edge.target, CLI) and not (edge.source in CLI_ENTRY_POINTS or _in_package(edge.source, CLI))
    ]
    assert offending == [], "library code imports the CLI:\n" + "\n".join(offending)


def test_the_manager_and_security_do_not_import_the_cli() -> None:
    """Spelled out for the two packages that used to (the narrower rule stays if the general one is relaxed)."""
    offending = [
        edge.describe()
        for edge in import_edges()
        if edge.source.startswith(("geartrain.manager.", "geartrain.security.")) and _in_package(edge.target, CLI)
    ]
    assert offending == []


COMPOSITION_ROOT = "geartrain.server.node"


def test_only_the_composition_root_puts_the_server_and_http_together() -> None:
    """The Gearman server does not build the HTTP listener, and the HTTP side sees the node only through the views
    of ``http/node.py``: it may use the pure core (snapshots, the engine's types), never the server's transport.
    Type-only imports count too: a view that names ``GearmanServer`` is not narrow."""
    offending = [
        edge.describe()
        for edge in import_edges()
        if (
            _in_package(edge.source, "geartrain.server")
            and edge.source != COMPOSITION_ROOT
            and _in_package(edge.target, "geartrain.http")
        )
        or (
            _in_package(edge.source, "geartrain.http")
            and _in_package(edge.target, "geartrain.server")
            and not _in_package(edge.target, "geartrain.server.core")
            and edge.target != "geartrain.server"
        )
    ]
    assert offending == [], "server and HTTP meet outside the composition root:\n" + "\n".join(offending)


# ---------------------------------------------------------------------- the checker itself


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_checker_finds_the_modules_of_the_real_package() -> None:
    modules = find_modules(SRC)
    assert {"geartrain", "geartrain.bench", "geartrain.bench.suite", "geartrain.manager.child"} <= set(modules)
    edges = {(edge.source, edge.target) for edge in import_edges()}
    assert ("geartrain.manager.child", "geartrain.security.environment") in edges
    assert ("geartrain.manager.child", "geartrain.security") in edges  # the package's __init__ runs first
    assert ("geartrain.bench.submit", "geartrain.bench.packets") in edges
    assert ("geartrain.bench.submit", "geartrain.bench") not in edges  # its own package


def test_the_checker_finds_cycles_through_function_level_and_relative_imports(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from pkg import b\n",
            "pkg/b.py": "def later():\n    from . import c\n",
            "pkg/c.py": "import pkg.a\n",
            "pkg/d.py": "from .a import thing\n",
        },
    )
    edges = import_edges(tmp_path, "pkg")
    cycles = import_cycles(edges)
    assert cycles == [["pkg.a", "pkg.b", "pkg.c"]]
    message = describe_cycles(cycles, edges)
    assert "  pkg.a, pkg.b, pkg.c\n" in message
    assert "pkg/b.py:2 imports pkg.c" in message


def test_the_checker_ignores_type_only_imports_and_re_exports(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg.sub.x import X\n",
            "pkg/sub/__init__.py": "from .x import X\nfrom .y import Y\n",
            "pkg/sub/x.py": "from pkg.sub import y\nclass X: ...\n",
            "pkg/sub/y.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    from pkg.sub.x import X\nelse:\n    import os\n"
                "class Y: ...\n"
            ),
            "pkg/user.py": "from pkg.sub.y import Y\n",
        },
    )
    edges = import_edges(tmp_path, "pkg")
    assert import_cycles(edges) == []
    found = {(edge.source, edge.target, edge.type_only) for edge in edges}
    assert ("pkg.sub.y", "pkg.sub.x", True) in found
    assert ("pkg.user", "pkg.sub", False) in found  # importing pkg.sub.y runs pkg/sub/__init__ first
    assert ("pkg.sub.x", "pkg.sub", False) not in found


def test_the_checker_counts_a_name_from_the_own_package(tmp_path: Path) -> None:
    """``from pkg import X`` in a submodule needs ``pkg/__init__`` to have defined X: a real cycle."""
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg.a import A\nfrom pkg.b import B\n",
            "pkg/a.py": "class A: ...\n",
            "pkg/b.py": "from pkg import A\nclass B(A): ...\n",
        },
    )
    assert import_cycles(import_edges(tmp_path, "pkg")) == [["pkg", "pkg.b"]]
