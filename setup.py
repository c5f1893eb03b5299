"""The compiled parts of geartrain, both optional: without a compiler, pip installs the same package in pure Python.

* ``geartrain.protocol._speedups``: the C framer and encoder of the Gearman codec.
* The server's hot path, compiled by mypyc from the same typed source (issue 17): the engine, the codec, a
  connection's reads and the server's flush. Nothing is written twice: the ``.py`` files are the only source, and
  ``GEARTRAIN_PURE_PYTHON=1`` runs them as they are (``geartrain/_pure.py``).

``GEARTRAIN_NO_MYPYC=1`` builds without mypyc (the C framer is still built). Everything else is in pyproject.toml.
"""

from __future__ import annotations

import os
import sys

from setuptools import Extension, setup

# The modules mypyc compiles: what a job passes through on the server, measured by instruction counts
# (docs/performance.md). The rest of the package (admin, life cycle, cluster, HTTP, clients) stays interpreted.
COMPILED = [
    "src/geartrain/protocol/codec.py",
    "src/geartrain/server/core/config.py",
    "src/geartrain/server/core/replies.py",
    "src/geartrain/server/core/records.py",
    "src/geartrain/server/core/jobs.py",
    "src/geartrain/server/core/peers.py",
    "src/geartrain/server/core/queues.py",
    "src/geartrain/server/core/sides.py",
    "src/geartrain/server/core/stats.py",
    "src/geartrain/server/core/state.py",
    "src/geartrain/server/core/durable.py",
    "src/geartrain/server/core/clients.py",
    "src/geartrain/server/core/workers.py",
    "src/geartrain/server/core/engine.py",
    "src/geartrain/server/connection.py",
    "src/geartrain/server/persistence.py",
    "src/geartrain/server/server.py",
    # Redis: a finished job's deletion (remove_now), the batches, and the replies read on the loop (resp, wire;
    # their async generators live in pool.py and resp_subscribe.py: mypyc does not compile async generators). The
    # SQL stores themselves stay interpreted: their drivers' values do not always have the types their stubs
    # declare, which compiled code checks (pymysql's rows).
    "src/geartrain/store/redis.py",
    "src/geartrain/store/resp.py",
    "src/geartrain/store/wire.py",
    "src/geartrain/store/mysql_wire.py",  # its QueryChannel extends wire's OrderedReplies, so it is compiled too
]


def compiled_modules() -> list[Extension]:
    if os.environ.get("GEARTRAIN_NO_MYPYC"):
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:  # a build without mypy: pure Python
        print("geartrain: mypyc not available, the server runs as pure Python", file=sys.stderr)
        return []
    # Third-party packages (uvloop, the drivers, hiredis, OpenTelemetry) are not in the build's environment: their
    # names are Any here, so the strict checks that depend on their types are off (`make typecheck` keeps them, with
    # the packages installed). A cache of its own: never the one `make typecheck` fills with their real types.
    options = [
        "--ignore-missing-imports",
        "--no-warn-return-any",
        "--no-warn-unused-ignores",
        "--disable-error-code=no-redef",
        "--cache-dir=build/mypyc-cache",
    ]
    extensions: list[Extension] = mypycify([*options, *COMPILED], opt_level="3", group_name="geartrain_hot")
    for extension in extensions:
        extension.optional = True  # no compiler: the build goes on and the .py modules run
    return extensions


setup(
    ext_modules=[
        Extension("geartrain.protocol._speedups", ["src/geartrain/protocol/_speedups.c"], optional=True),
        *compiled_modules(),
    ]
)
