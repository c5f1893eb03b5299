"""Worker functions the manager tests run in child processes (imported by path: ``jobs:pid``)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from geartrain.errors import JobFailed


def pid(job: object) -> bytes:
    """Which process served the job."""
    return str(os.getpid()).encode()


def reverse(job: object) -> bytes:
    data: bytes = job.data  # type: ignore[attr-defined]
    return data[::-1]


def gated(job: object) -> bytes:
    """Creates ``<dir>/started``, then works until ``<dir>/release`` exists (the workload is the directory): the
    test decides when the job ends, without timing anything."""
    data: bytes = job.data  # type: ignore[attr-defined]
    directory = Path(data.decode())
    (directory / "started").write_text(str(os.getpid()))
    deadline = time.monotonic() + 60
    while not (directory / "release").exists():
        if time.monotonic() > deadline:
            raise JobFailed("never released")
        time.sleep(0.02)
    return b"finished " + str(os.getpid()).encode()


async def async_pid(job: object) -> bytes:
    """An ``async def`` worker function: which process served the job."""
    return str(os.getpid()).encode()
