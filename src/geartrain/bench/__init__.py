"""Load generator and workloads for measuring Gearman job servers (``geartrain bench``, ``make bench``).

Standard library only. The generator runs in processes of its own (see :mod:`geartrain.bench.harness`), sends
pre-built pipelined packets and counts background acknowledgements by scanning bytes, so that it stays ahead of
the server it measures; every result carries its own CPU time next to the server's to show when it did not.
Because the processes are started with ``spawn``, a script that calls the workloads needs the usual
``if __name__ == "__main__":`` guard.
"""

from geartrain.bench.suite import VARIANTS, WORKLOADS, run
from geartrain.bench.workloads import Result, Target

__all__ = ["VARIANTS", "WORKLOADS", "Result", "Target", "run"]
