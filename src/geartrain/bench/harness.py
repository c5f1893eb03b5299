"""Load-generator processes: start them, let each prepare, release them together, collect what they measured.

One Python process cannot keep a fast server busy, so every workload with several connections spreads them over
several processes. Each task is a function ``task(params, gate)``: it connects and pre-builds its packets, then
calls ``gate()``, which reports "ready" and blocks until every task is ready; the value ``gate()`` returns is the
common start time (``time.perf_counter()``, which is system-wide monotonic on Linux). The task returns a dict of
plain values, which must include ``cpu_s``, its own CPU time after the gate. Every task also finds a shared
``multiprocessing.Event`` in ``params["stop_event"]``: one task can set it to end others that run open-ended.
"""

from __future__ import annotations

import multiprocessing
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from geartrain.errors import GearmanError

Gate = Callable[[], float]
Task = Callable[[dict[str, Any], Gate], dict[str, Any]]

SETUP_TIMEOUT = 120.0  # seconds for every process to connect and pre-build (1M packets take a while)


class GeneratorError(GearmanError, RuntimeError):  # RuntimeError: `geartrain bench` catches it as one
    """A load-generator process failed; carries its traceback."""


def _child(pipe: Connection, task: Task, params: dict[str, Any]) -> None:
    def gate() -> float:
        pipe.send(("ready", None))
        message, start = pipe.recv()
        assert message == "go"
        return float(start)

    try:
        result = task(params, gate)
        pipe.send(("done", result))
    except BaseException:
        pipe.send(("error", traceback.format_exc()))
    finally:
        pipe.close()


def run_tasks(
    tasks: list[tuple[Task, dict[str, Any]]],
    *,
    start_delay: float = 0.0,
    timeout: float = 600.0,
    on_start: Callable[[], None] | None = None,
) -> tuple[float, list[dict[str, Any]]]:
    """Run every task in its own process; returns the common start time and the results in task order.

    ``on_start`` runs in this process just before the release (e.g. to take the server's CPU reading);
    ``start_delay`` puts the start time a little in the future so that every process starts at once.
    """
    # spawn, not fork: the parent may have threads (a test's in-process server) that fork would copy mid-step.
    context = multiprocessing.get_context("spawn")
    pipes: list[Connection] = []
    processes = []
    stop_event = context.Event()
    try:
        for task, params in tasks:
            parent_end, child_end = context.Pipe()
            process = context.Process(
                target=_child, args=(child_end, task, params | {"stop_event": stop_event}), daemon=True
            )
            process.start()
            child_end.close()
            pipes.append(parent_end)
            processes.append(process)
        for pipe in pipes:
            _expect(pipe, "ready", SETUP_TIMEOUT)
        if on_start is not None:
            on_start()
        start = time.perf_counter() + start_delay
        for pipe in pipes:
            pipe.send(("go", start))
        deadline = time.monotonic() + timeout
        results = [_expect(pipe, "done", max(1.0, deadline - time.monotonic())) for pipe in pipes]
        return start, results
    finally:
        for process in processes:
            process.join(5)
            if process.is_alive():
                process.kill()
                process.join()
        for pipe in pipes:
            pipe.close()


def _expect(pipe: Connection, wanted: str, timeout: float) -> Any:
    if not pipe.poll(timeout):
        raise GeneratorError(f"a load-generator process did not report {wanted!r} within {timeout:.0f} s")
    try:
        message, value = pipe.recv()
    except EOFError as exc:
        raise GeneratorError("a load-generator process died") from exc
    if message == "error":
        raise GeneratorError(f"load-generator process failed:\n{value}")
    if message != wanted:
        raise GeneratorError(f"load-generator process sent {message!r}, expected {wanted!r}")
    return value


def split(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` near-equal non-negative shares (the first ones get the remainder)."""
    base, extra = divmod(total, parts)
    return [base + (1 if n < extra else 0) for n in range(parts)]


def spread(
    task: Task, connections: int, processes: int, share_key: str, params: dict[str, Any]
) -> list[tuple[Task, dict[str, Any]]]:
    """``connections`` alike connections over at most ``processes`` processes: one ``task`` each, with ``params``
    and its share of the connections under ``share_key``. Never more processes than connections, so no process
    idles with a share of zero."""
    processes = max(1, min(processes, connections))
    return [(task, {**params, share_key: share}) for share in split(connections, processes)]
