"""Operator actions beyond gearmand's admin commands, built on the engine's own cancel path.

``cancel job`` leaves a cancelled job in its queue until a worker reaches it (gearmand's behaviour, which the admin
``status`` numbers show). A purge empties the queue at once instead: every queued job of the function is cancelled
(its foreground clients get WORK_FAIL, it leaves the store) and freed. Running jobs are not touched.
"""

from __future__ import annotations

from geartrain.server.core.engine import Engine
from geartrain.server.core.queues import PRIORITIES


def purge(engine: Engine, name: bytes) -> int | None:
    """Cancel and remove every queued job of function ``name``; the number removed, or ``None`` if unknown."""
    function = engine.functions.get(name)
    if function is None:
        return None
    removed = 0
    for priority in PRIORITIES:
        queue = function.queues[priority]
        while queue:
            job = queue.popleft()
            function.queued[priority] -= 1
            if job.ignore:
                engine._skip(job)  # cancelled or abandoned already (or a ghost: freed already)
                continue
            engine.cancel(job.handle)
            removed += 1
            engine._free(job)
    return removed


def set_max_queue(engine: Engine, name: bytes, limits: list[int]) -> bool:
    """Set the per-priority queue limits (0 = unlimited) like the admin ``maxqueue``; ``False`` if unknown."""
    function = engine.functions.get(name)
    if function is None:
        return False
    function.max_queue = [max(0, int(limit)) for limit in limits]
    return True
