"""The compiled hot path (setup.py, mypyc) and the pure-Python path it is compiled from: which one runs is what the
tests and the start-up line say, and a machine without a compiler still gets a working, pure-Python package."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from geartrain._pure import build_name
from servers import REPO_ROOT

PROBE = "import geartrain.server.core.engine as e, geartrain._pure as p; print(e.__file__); print(p.build_name())"


def test_ci_tests_the_compiled_build() -> None:
    """make test runs against what mypyc compiled (CI builds with a compiler); GEARTRAIN_PURE_PYTHON=1 runs are
    the pure-Python pass."""
    if os.environ.get("GEARTRAIN_PURE_PYTHON"):
        assert build_name() == "pure Python"
    elif os.environ.get("CI"):
        assert build_name() == "compiled (mypyc)"
    else:
        assert build_name() in ("compiled (mypyc)", "pure Python")


def test_pure_python_variable_loads_every_module_from_its_source() -> None:
    env = {**os.environ, "GEARTRAIN_PURE_PYTHON": "1"}
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    path, name = result.stdout.split("\n")[:2]
    assert path.endswith(os.path.join("server", "core", "engine.py")) and name == "pure Python"


def test_without_a_compiler_the_package_builds_and_runs_as_pure_python(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    env = {**os.environ, "CC": "false"}  # every compiler call fails: the optional extensions are left out
    build = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(REPO_ROOT)]
    result = subprocess.run(build, capture_output=True, text=True, env=env, timeout=600)
    if result.returncode != 0 and "No matching distribution" in result.stderr and not os.environ.get("CI"):
        pytest.skip(f"the build's requirements cannot be downloaded here: {result.stderr.strip()[-300:]}")
    assert result.returncode == 0, result.stderr[-3000:]
    (wheel,) = wheels.glob("geartrain-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "geartrain/server/core/engine.py" in names
    assert [name for name in names if name.endswith(".so")] == []
    site = tmp_path / "site"
    install = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)]
    subprocess.run(install, check=True, capture_output=True, timeout=300)
    # -S: not this venv's site-packages (its editable geartrain is the compiled one), only the installed wheel.
    probe = f"import sys; sys.path.insert(0, {str(site)!r}); {PROBE}"
    result = subprocess.run([sys.executable, "-S", "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    path, name = result.stdout.split("\n")[:2]
    assert path.startswith(str(site)) and path.endswith("engine.py") and name == "pure Python"
