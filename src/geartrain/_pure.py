"""Which code runs: the modules mypyc compiled (setup.py), or their ``.py`` source.

A build with a compiler puts a compiled module beside each hot module's source, and Python imports the compiled one
first. ``GEARTRAIN_PURE_PYTHON=1`` (read once, when ``geartrain`` is imported) makes every ``geartrain`` module load
from its ``.py`` file instead, so the pure-Python path stays runnable and tested on a compiled install; it also
turns off the C framer (``protocol/codec.py``).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType

PURE_PYTHON_VARIABLE = "GEARTRAIN_PURE_PYTHON"
# A module that is always compiled when anything is: which one ran says which build runs.
_PROBE = "geartrain.server.core.engine"


class SourceFirst:
    """A meta path finder: a ``geartrain`` module that has both a compiled file and a ``.py`` loads the ``.py``."""

    def find_spec(self, name: str, path: Sequence[str] | None, target: ModuleType | None = None) -> ModuleSpec | None:
        if not name.startswith("geartrain."):
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.origin is None or not isinstance(spec.loader, importlib.machinery.ExtensionFileLoader):
            return None
        source = Path(spec.origin).with_name(name.rpartition(".")[2] + ".py")
        if not source.is_file():  # C only (the codec's _speedups): the codec itself decides whether to use it
            return None
        return importlib.util.spec_from_file_location(name, source)


def pure_python_requested() -> bool:
    return bool(os.environ.get(PURE_PYTHON_VARIABLE))


def install_if_requested() -> None:
    if pure_python_requested() and not any(isinstance(finder, SourceFirst) for finder in sys.meta_path):
        sys.meta_path.insert(0, SourceFirst())


def build_name() -> str:
    """``compiled (mypyc)`` or ``pure Python``: said in the server's start-up line."""
    module = sys.modules.get(_PROBE) or importlib.import_module(_PROBE)
    compiled = (module.__file__ or "").endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))
    return "compiled (mypyc)" if compiled else "pure Python"
