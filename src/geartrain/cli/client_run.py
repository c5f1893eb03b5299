"""Client mode of the ``gearman`` tool, shared with ``geartrain submit``: run workloads as jobs and report them.

For each workload (an argument, a line, or all of stdin) one job per function is submitted; the functions run at
once and the next workload starts when all of them have ended, as libgearman's tool does. What the jobs send is
handed to an output object as it arrives: :class:`TextOutput` writes it the way the C tool does, the JSON output of
``geartrain submit`` collects it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from ssl import SSLContext
from typing import Any, Protocol

from geartrain.cli.common import EXIT_FAILED, EXIT_OK, EXIT_SERVER, EXIT_TIMEOUT, RawOutput
from geartrain.client import Client, Job
from geartrain.client.events import (
    JobEvent,
    WorkComplete,
    WorkData,
    WorkException,
    WorkFail,
    WorkStatus,
    WorkWarning,
)
from geartrain.errors import (
    GearmanError,
    JobException,
    JobFailed,
    NoServersAvailable,
    ServerError,
)
from geartrain.protocol.packets import Priority


@dataclass
class ClientOptions:
    """What a client run needs; ``timeout`` (seconds) is how long to wait for anything from the server."""

    servers: list[str]
    functions: list[str]
    background: bool = False
    priority: Priority = Priority.NORMAL
    unique: str | None = None
    timeout: float | None = None
    connect_timeout: float = 10.0
    prog: str = "gearman"
    tls: SSLContext | None = None
    secret: str | None = None
    when: float | None = None  # a Unix time: SUBMIT_JOB_EPOCH, a background job that runs from then on


class Output(Protocol):
    """Receives what happens to the jobs of a run."""

    def created(self, job: Job) -> None: ...

    def event(self, job: Job, event: JobEvent) -> None: ...

    def ended(self, job: Job) -> None: ...

    def refused(self, function: str, workload: bytes, error: GearmanError) -> None: ...

    def error(self, message: str) -> None: ...


def percent(numerator: int, denominator: int) -> int:
    """WORK_STATUS as a whole percentage; a zero denominator reads 0 % (the C tool dies of SIGFPE on it)."""
    if denominator == 0:
        return 0
    value = abs(numerator) * 100 // abs(denominator)  # truncated toward zero, in exact integer arithmetic
    return -value if (numerator < 0) != (denominator < 0) else value


class TextOutput:
    """The C tool's output: WORK_DATA and WORK_COMPLETE raw on stdout, WORK_WARNING and WORK_EXCEPTION raw on
    stderr, ``N% Complete`` lines for WORK_STATUS, ``Job failed`` on stderr, ``Task created: H`` with -v, and
    ``FUNCTION: `` before each of them with -P. Everything is written as it arrives, in order."""

    def __init__(self, prog: str = "gearman", *, prefix: bool = False, verbose: bool = False) -> None:
        self.prog = prog
        self.prefix = prefix
        self.verbose = verbose
        self.stdout = RawOutput(1, prog)
        self.stderr = RawOutput(2, prog)
        self._announced: set[int] = set()

    def _prefix(self, job: Job) -> bytes:
        return f"{job.function}: ".encode() if self.prefix else b""

    def created(self, job: Job) -> None:
        if id(job) in self._announced:
            return
        self._announced.add(id(job))
        if self.verbose:
            self.stdout.write(f"Task created: {job.handle}\n".encode())

    def event(self, job: Job, event: JobEvent) -> None:
        self.created(job)  # a job's first event can come before submit() returns
        prefix = self._prefix(job)
        if isinstance(event, WorkData | WorkComplete):
            self.stdout.write(prefix + event.data)
        elif isinstance(event, WorkWarning):
            self.stderr.write(prefix + event.data)
        elif isinstance(event, WorkStatus):
            self.stdout.write(prefix + f"{percent(event.numerator, event.denominator)}% Complete\n".encode())
        elif isinstance(event, WorkException):
            text = event.data if not event.data or event.data.endswith(b"\n") else event.data + b"\n"
            self.stderr.write(prefix + text + prefix + b"Job failed\n")
        elif isinstance(event, WorkFail):
            self.stderr.write(prefix + b"Job failed\n")

    def ended(self, job: Job) -> None:
        self._announced.discard(id(job))

    def refused(self, function: str, workload: bytes, error: GearmanError) -> None:
        self.error(f"the server refused the job for {function!r}: {error}")

    def error(self, message: str) -> None:
        self.stderr.write(f"{self.prog}: {message}\n".encode())


@dataclass
class _Run:
    status: int = EXIT_OK
    fatal: bool = False
    jobs: list[Job] = field(default_factory=list)

    def worse(self, status: int) -> None:
        # A timeout or a server problem says more about the run than a failed job.
        if status == EXIT_TIMEOUT or (status == EXIT_SERVER and self.status != EXIT_TIMEOUT) or self.status == EXIT_OK:
            self.status = status


async def run_client(options: ClientOptions, workloads: Iterable[bytes], output: Output) -> int:
    """Run every workload (the iterable is consumed lazily, so stdin lines are submitted as they are read) and
    return the exit status: 0, 1 (a job failed), 2 (server unreachable, connection lost, job refused), 3 (-t)."""
    client = Client(
        options.servers,
        exceptions=True,
        connect_timeout=options.connect_timeout,
        tls=options.tls,
        secret=options.secret,
    )
    run = _Run()
    try:
        for workload in workloads:
            await _run_workload(client, options, workload, output, run)
            if run.fatal:
                break
    finally:
        await client.close()
    return run.status


async def _run_workload(client: Client, options: ClientOptions, data: bytes, output: Output, run: _Run) -> None:
    activity = asyncio.Event()

    def on_event(job: Job, event: JobEvent) -> None:
        output.event(job, event)
        activity.set()

    async def one(function: str) -> None:
        # libgearman sends a fresh UUID as the unique key of every task when none is given.
        unique = options.unique if options.unique is not None else str(uuid.uuid4())
        try:
            job = await client.submit(
                function,
                data,
                unique=unique,
                priority=options.priority,
                background=options.background or options.when is not None,
                when=options.when,
                on_event=on_event,
            )
        except NoServersAvailable as exc:
            output.error(f"cannot submit the job: {exc}")
            run.worse(EXIT_SERVER)
            run.fatal = True
            return
        except ServerError as exc:
            output.refused(function, data, exc)
            run.worse(EXIT_SERVER)
            return
        except GearmanError as exc:
            output.error(f"cannot submit the job: {exc}")
            run.worse(EXIT_SERVER)
            return
        run.jobs.append(job)
        output.created(job)
        activity.set()
        try:
            await job.result()
        except (JobFailed, JobException):
            run.worse(EXIT_FAILED)  # already reported by its WORK_FAIL / WORK_EXCEPTION event
        except GearmanError as exc:  # ConnectionLost, mostly
            output.error(f"job {job.handle} on {job.server}: {exc}; its result is unknown")
            run.worse(EXIT_SERVER)
        finally:
            output.ended(job)

    tasks: set[asyncio.Future[Any]] = {asyncio.ensure_future(one(function)) for function in options.functions}
    try:
        pending = set(tasks)
        while pending:
            activity.clear()
            waiter: asyncio.Future[Any] = asyncio.ensure_future(activity.wait())
            done, pending = await asyncio.wait(
                pending | {waiter}, timeout=options.timeout, return_when=asyncio.FIRST_COMPLETED
            )
            waiter.cancel()
            pending.discard(waiter)
            if not done:
                milliseconds = round((options.timeout or 0) * 1000)
                output.error(f"timed out: nothing came from the job server in {milliseconds} ms")
                run.worse(EXIT_TIMEOUT)
                run.fatal = True
                return
    finally:
        for task in tasks:
            task.cancel()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    for result in outcomes:
        if isinstance(result, Exception):
            raise result  # a bug, not a job's outcome: let it show
