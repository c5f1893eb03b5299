"""Worker mode of the ``gearman`` tool (``gearman -w``), shared with ``geartrain work``.

Each job runs the command with the workload on its stdin (or, without a command, writes the workload to stdout).
The command's stdout is the result: exit status 0 sends WORK_COMPLETE with it; any other status, or death by a
signal, sends what it printed as WORK_DATA, then WORK_FAIL. With -n/-N every line of output is sent as its own
WORK_DATA as soon as it is printed (one line per packet, not the growing buffer gearmand's tool sends), then an
empty WORK_COMPLETE.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from dataclasses import dataclass, field
from ssl import SSLContext

from geartrain.cli.common import EXIT_OK, EXIT_SERVER, EXIT_TIMEOUT, RawOutput
from geartrain.errors import JobFailed
from geartrain.worker import Worker, WorkerJob

READ_SIZE = 65536
WATCH_INTERVAL = 0.05  # seconds between checks of the connection and the idle time


@dataclass
class WorkerOptions:
    """``command`` empty: echo workloads to stdout. ``count`` 0: run until stopped. ``idle_timeout``: give up when
    no job has come for this long (seconds). ``retry_for``: give up when no server has been reachable this long."""

    servers: list[str]
    functions: list[str]
    command: list[str] = field(default_factory=list)
    count: int = 0
    per_line: bool = False
    strip_newline: bool = False
    idle_timeout: float | None = None
    retry_for: float = 60.0
    concurrency: int = 1
    client_id: str | None = None
    prog: str = "gearman"
    drain_on_signal: bool = False  # TERM/INT: finish the running jobs first (a second signal stops at once)
    tls: SSLContext | None = None
    secret: str | None = None


class _CommandWorker:
    def __init__(self, options: WorkerOptions) -> None:
        self.options = options
        self.worker = Worker(
            options.servers,
            concurrency=options.concurrency,
            client_id=options.client_id,
            tls=options.tls,
            secret=options.secret,
        )
        for name in options.functions:
            self.worker.register(name, self.handle, executor="async")
        self.stdout = RawOutput(1, options.prog)
        self.stderr = RawOutput(2, options.prog)
        self.status = EXIT_OK
        self.started = 0
        self.running = 0
        self.last_activity = 0.0
        self.signals = 0

    def error(self, message: str) -> None:
        self.stderr.write(f"{self.options.prog}: {message}\n".encode())

    def on_signal(self, signum: int) -> None:
        self.signals += 1
        self.stop(128 + signum, graceful=self.options.drain_on_signal and self.signals == 1)

    def stop(self, status: int, graceful: bool = True) -> None:
        if self.status == EXIT_OK:
            self.status = status
        self.worker.stop(graceful=graceful)

    # ------------------------------------------------------------------ jobs

    async def handle(self, job: WorkerJob) -> bytes:
        loop = asyncio.get_running_loop()
        self.started += 1
        self.running += 1
        self.last_activity = loop.time()
        if self.options.count and self.started >= self.options.count:
            self.worker.stop(graceful=True)  # take no other job; this one still ends normally
        try:
            if not self.options.command:
                self.stdout.write(job.data)
                return b""
            return await self.run_command(job)
        finally:
            self.running -= 1
            self.last_activity = loop.time()

    async def run_command(self, job: WorkerJob) -> bytes:
        command = self.options.command
        try:
            process = await asyncio.create_subprocess_exec(
                *command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
            )
        except OSError as exc:
            self.error(f"cannot run {command[0]!r}: {exc.strerror or exc}")
            raise JobFailed(f"cannot run {command[0]!r}") from exc
        assert process.stdin is not None and process.stdout is not None
        feeder = asyncio.ensure_future(_feed(process.stdin, job.data))
        try:
            if self.options.per_line:
                await self.send_lines(process.stdout, job)
                output = b""
            else:
                output = await process.stdout.read()
            status = await process.wait()
        finally:
            feeder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await feeder
            if process.returncode is None:  # the job was abandoned (worker stopped at once): do not leave it behind
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        if status == 0:
            return output
        if output:
            await job.send_data(output)
        reason = f"killed by signal {-status}" if status < 0 else f"exit status {status}"
        raise JobFailed(f"{command[0]}: {reason}")

    async def send_lines(self, stream: asyncio.StreamReader, job: WorkerJob) -> None:
        strip = self.options.strip_newline
        pending = b""
        while chunk := await stream.read(READ_SIZE):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                await job.send_data(line if strip else line + b"\n")
        if pending:  # a last line without its newline is sent as it is
            await job.send_data(pending)

    # ------------------------------------------------------------------ supervision

    async def watch(self) -> None:
        """Give up when no server has been reachable for ``retry_for`` seconds, or (``idle_timeout``) when no job
        has come for that long."""
        loop = asyncio.get_running_loop()
        options = self.options
        self.last_activity = unreachable_since = loop.time()
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            now = loop.time()
            if self.worker.connected:
                unreachable_since = now
            elif now - unreachable_since >= options.retry_for:
                servers = ", ".join(options.servers)
                self.error(f"giving up: no job server reachable ({servers}) for {options.retry_for:g} s")
                self.stop(EXIT_SERVER, graceful=False)
                return
            idle = options.idle_timeout
            if idle is not None and self.running == 0 and now - self.last_activity >= idle:
                self.error(f"timed out: no job came in {round(idle * 1000)} ms")
                self.stop(EXIT_TIMEOUT)
                return

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self.on_signal, signum)
        watcher = asyncio.ensure_future(self.watch())
        try:
            await self.worker.run()
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
        return self.status


async def _feed(stream: asyncio.StreamWriter, data: bytes) -> None:
    """Write the workload to the command's stdin and close it; a command that does not read it is no error."""
    # The command may exit without reading: its stdin pipe is then broken, or already closed by the loop.
    gone = (OSError, RuntimeError)
    try:
        if data and not stream.is_closing():
            stream.write(data)
            await stream.drain()
    except gone:
        pass
    finally:
        with contextlib.suppress(*gone):
            stream.close()
            await stream.wait_closed()


async def run_worker(options: WorkerOptions) -> int:
    """Serve jobs until ``count`` jobs are done, a signal, or a give-up; return the exit status (0, 2 server
    unreachable for ``retry_for``, 3 idle timeout, 128+N after signal N)."""
    return await _CommandWorker(options).run()
