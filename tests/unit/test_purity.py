"""The core stays pure: `geartrain.protocol` and `geartrain.server.core` import no I/O, event-loop, thread or database
module. Checked in a fresh interpreter, so the rest of the test session's imports cannot hide anything."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import geartrain

PACKAGE_DIR = Path(geartrain.__file__).parent
CORE_DIRS = [PACKAGE_DIR / "protocol", PACKAGE_DIR / "server" / "core"]

FORBIDDEN = {
    "asyncio",
    "socket",
    "_socket",
    "selectors",
    "ssl",
    "_ssl",
    "sqlite3",
    "_sqlite3",
    "threading",
    "_thread",
    "concurrent",
    "multiprocessing",
    "subprocess",
    "uvloop",
    "pymysql",
    "psycopg",
    "redis",
}


def core_modules() -> list[str]:
    """Every module of the pure core, found on disk (so modules split off later are covered too)."""
    names = []
    for directory in CORE_DIRS:
        package = ".".join(directory.relative_to(PACKAGE_DIR.parent).parts)
        names.append(package)
        names += [f"{package}.{path.stem}" for path in sorted(directory.glob("*.py")) if path.stem != "__init__"]
    return names


# Imports the core modules with the top-level `geartrain` package stubbed, so that only what the core modules
# themselves pull in counts (not the curated re-exports of geartrain/__init__.py, which include the asyncio client).
# `logging` (stdlib, used for the engine's warnings) imports threading itself; it is loaded first and allowed.
PROBE = """
import importlib, importlib.util, json, sys, types
spec = importlib.util.find_spec("geartrain")
stub = types.ModuleType("geartrain")
stub.__path__ = list(spec.submodule_search_locations)
sys.modules["geartrain"] = stub
import logging
before = set(sys.modules)
for name in json.loads(sys.argv[1]):
    importlib.import_module(name)
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def fresh_imports(code: str, *args: str) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


def test_core_modules_are_found() -> None:
    modules = core_modules()
    for expected in (
        "geartrain.protocol.codec",
        "geartrain.protocol.admin",
        "geartrain.protocol.packets",
        "geartrain.server.core.engine",
        "geartrain.server.core.admin",
    ):
        assert expected in modules


def test_importing_the_core_loads_no_io_module() -> None:
    modules = core_modules()
    loaded = fresh_imports(PROBE, json.dumps(modules))
    assert set(modules) <= loaded
    bad = sorted(name for name in loaded if name.split(".")[0] in FORBIDDEN)
    assert bad == []
    outside = sorted(name for name in loaded if name.startswith("geartrain.") and not _allowed_own_module(name))
    assert outside == [], "the core may use only geartrain.errors, geartrain.store.base, geartrain.lifecycle and itself"


# geartrain.lifecycle is the job life cycle's model (policies, cron schedules): pure like the core, which applies it
# (its FORBIDDEN imports are checked above with the core's, since the core loads it).
CORE_PACKAGES = ("geartrain.protocol", "geartrain.server.core", "geartrain.lifecycle")


def _allowed_own_module(name: str) -> bool:
    return name in {"geartrain.errors", "geartrain.server", "geartrain.store", "geartrain.store.base"} or any(
        name == prefix or name.startswith(prefix + ".") for prefix in CORE_PACKAGES
    )


@pytest.mark.parametrize("path", [p for d in CORE_DIRS for p in sorted(d.glob("*.py"))], ids=lambda p: p.name)
def test_core_sources_import_nothing_forbidden(path: Path) -> None:
    """Direct imports, including ones the dynamic check cannot see (threading is already loaded by logging)."""
    tree = ast.parse(path.read_text(), str(path))
    imported = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.append(node.module)
    assert sorted(name for name in imported if name.split(".")[0] in FORBIDDEN) == []


def test_importing_geartrain_protocol_as_a_user_would_loads_no_asyncio() -> None:
    code = (
        "import json, sys, geartrain.protocol.codec, geartrain.server.core.engine; "
        "print(json.dumps(sorted(sys.modules)))"
    )
    loaded = fresh_imports(code)
    assert sorted(name for name in loaded if name.split(".")[0] in {"asyncio", "socket", "selectors", "ssl"}) == []
