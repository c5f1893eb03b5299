"""A geartrain worker whose functions send every kind of WORK_* packet, for comparing clients' output.

Usage: events_worker.py -h HOST -p PORT
"""

from __future__ import annotations

import sys

from geartrain import JobFailed, SyncWorker, ThreadJob
from geartrain.errors import JobException


def chatty(job: ThreadJob) -> bytes:
    job.send_data(b"d1")
    job.send_warning(b"w1")
    job.send_status(1, 4)
    job.send_data(b"d2\n")
    return b"R\n"


def zero(job: ThreadJob) -> bytes:
    job.send_status(1, 0)  # the C client dies of SIGFPE on this
    return b"z\n"


def big(job: ThreadJob) -> bytes:
    job.send_status(50_000_000, 100_000_000)  # numerator * 100 overflows 32 bits in the C client
    return b"b\n"


def echo(job: ThreadJob) -> bytes:
    return job.data


def up(job: ThreadJob) -> bytes:
    return job.data.upper()


def fail(job: ThreadJob) -> bytes:
    job.send_data(b"partial\n")
    raise JobFailed("asked to fail")


def exc(job: ThreadJob) -> bytes:
    raise JobException(b"ValueError: boom")


def main() -> None:
    host, port = sys.argv[2], sys.argv[4]
    worker = SyncWorker(f"{host}:{port}", exceptions=True)
    for function in (chatty, zero, big, echo, up, fail, exc):
        worker.register(function.__name__, function, executor="inline")
    worker.work()


if __name__ == "__main__":
    main()
