"""One supervised worker process: start it, restart it when it dies, recycle it, stop it without cutting a job off.

A :class:`WorkerSlot` is one of a group's ``processes`` places. Its task starts a process and waits for it; when
the process exits on its own it is started again: at once when it exited 0 (a Python worker recycled after its
jobs) or was recycled by the clock, after an exponential backoff when it crashed. A process that ran for
``stable_after`` seconds has its backoff reset, so a crash once a day never waits long.

Stopping sends SIGTERM to the process itself (a Python worker finishes its running job, then exits; a command gets
the chance to do the same) and SIGKILL to its whole process group after the group's ``stop_timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import logging
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass

from geartrain.client.transport import Backoff
from geartrain.manager.config import GroupConfig, ManagerSettings

log = logging.getLogger("geartrain.manager")

QUICK_EXIT = 1.0  # seconds: a clean exit sooner than this counts as "at once"
QUICK_EXITS_BEFORE_BACKOFF = 5  # so many clean exits at once in a row: pace the restarts as if they were crashes
PR_SET_PDEATHSIG = 1  # linux/prctl.h


@dataclass(frozen=True)
class LaunchSpec:
    """What to execute for one process of a group."""

    argv: tuple[str, ...]
    env: dict[str, str]
    cwd: str | None


def launch_spec(group: GroupConfig, index: int, environ: dict[str, str] | None = None) -> LaunchSpec:
    """The command line and environment of process ``index`` (from 1) of ``group``.

    Python groups run :mod:`geartrain.manager.child` with the manager's interpreter. Commands get the servers in
    ``GEARMAN_SERVER``, which libgearman's tools and geartrain's read. The group's ``env`` comes last and wins.
    """
    env = dict(os.environ if environ is None else environ)
    env["GEARMAN_SERVER"] = ",".join(group.servers)
    env["GEARTRAIN_WORKER_GROUP"] = group.name
    env["GEARTRAIN_WORKER_INDEX"] = str(index)
    env.update(group.env)
    if group.is_python:
        assert group.callable is not None
        argv = [sys.executable, "-m", "geartrain.manager.child", "--callable", group.callable]
        argv += [arg for server in group.servers for arg in ("--server", server)]
        argv += [arg for function in group.functions for arg in ("--function", function)]
        argv += ["--concurrency", str(group.concurrency), "--recycle-jobs", str(group.recycle_jobs)]
        argv += ["--client-id", f"{group.name}-{index}"]
        return LaunchSpec(tuple(argv), env, group.cwd)
    return LaunchSpec(group.command, env, group.cwd)


def _parent_death_signal() -> Callable[[], None] | None:
    """A function for the new process, run before exec (Linux only): ask the kernel for SIGTERM when the manager
    dies, even by ``kill -9``, so a command that knows nothing of the manager is not left running on its own.

    libc is looked up here, in the manager, so that the forked child only makes the system call."""
    if sys.platform != "linux":
        return None  # Python workers still notice on their own (geartrain.manager.child)
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return functools.partial(prctl, PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)


def describe_exit(status: int) -> str:
    if status < 0:
        try:
            return f"killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"killed by signal {-status}"
    return f"exit status {status}"


class WorkerSlot:
    """Keeps one process of a group running until :meth:`stop`."""

    def __init__(self, group: GroupConfig, index: int, settings: ManagerSettings) -> None:
        self.group = group
        self.index = index
        self.settings = settings
        self.name = f"{group.name}#{index}"
        self.process: asyncio.subprocess.Process | None = None
        self.starts = 0
        self.crashes = 0
        self.started_at: float | None = None  # loop time of the running process's start
        self._backoff = Backoff(settings.backoff_initial, settings.backoff_max)
        self._retiring = False
        self._recycling = False
        self._quick_exits = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping: asyncio.Future[None] | None = None
        self._before_exec = _parent_death_signal()

    @property
    def pid(self) -> int | None:
        process = self.process
        return process.pid if process is not None and process.returncode is None else None

    def state(self, now: float) -> str:
        """One line for the status report: pid and uptime, or why there is no process."""
        if self.pid is not None and self.started_at is not None:
            running = f"pid {self.pid}, up {now - self.started_at:.0f}s"
        else:
            running = "stopping" if self._retiring else "waiting to restart"
        return f"{self.name}: {running}, {self.starts} start(s), {self.crashes} crash(es)"

    def update(self, group: GroupConfig, settings: ManagerSettings) -> None:
        """Take a new ``stop_timeout`` and manager settings (backoff, stable_after) without a restart."""
        self.group, self.settings = group, settings
        self._backoff.initial, self._backoff.maximum = settings.backoff_initial, settings.backoff_max

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._keep_running())

    def stop(self) -> asyncio.Future[None]:
        """Ask the process to finish (SIGTERM), kill its process group after ``stop_timeout``; the future is done
        once it is gone. Calling it again returns the same future."""
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop())
        return self._stopping

    async def _stop(self) -> None:
        self._retiring = True
        self._wake.set()
        task = self._task
        if task is None:
            return
        self._signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(task), self.group.stop_timeout)
        except TimeoutError:
            log.warning("%s: still running %gs after SIGTERM: killing it", self.name, self.group.stop_timeout)
            self._signal(signal.SIGKILL, whole_group=True)
            await task

    def kill(self) -> None:
        """SIGKILL the process group at once (the slot must already be stopping, or it starts a new one)."""
        self._retiring = True
        self._wake.set()
        self._signal(signal.SIGKILL, whole_group=True)

    def _signal(self, signum: signal.Signals, whole_group: bool = False) -> None:
        pid = self.pid
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            # Each process leads its own session (start_new_session), so its pid is its process group id.
            if whole_group:
                os.killpg(pid, signum)
            else:
                os.kill(pid, signum)

    def _recycle_by_time(self) -> None:
        log.info("%s: recycling after %gs", self.name, self.group.recycle_seconds)
        self._recycling = True
        self._signal(signal.SIGTERM)

    async def _pause(self, delay: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._wake.wait()

    async def _spawn(self) -> asyncio.subprocess.Process | None:
        spec = launch_spec(self.group, self.index)
        try:
            return await asyncio.create_subprocess_exec(
                *spec.argv,
                env=spec.env,
                cwd=spec.cwd,
                stdin=asyncio.subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=self._before_exec,
            )
        except OSError as exc:
            delay = self._backoff.next_delay()
            log.error("%s: cannot start %s: %s; retrying in %.2fs", self.name, spec.argv[0], exc, delay)
            await self._pause(delay)
            return None

    async def _keep_running(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._retiring:
            process = await self._spawn()
            if process is None:
                continue
            self.process, self._recycling = process, False
            self.starts += 1
            self.started_at = started = loop.time()
            log.info("%s: started, pid %d", self.name, process.pid)
            if self._retiring:  # stop() came while the process was being started
                self._signal(signal.SIGTERM)
            timer = None
            if self.group.recycle_seconds:
                timer = loop.call_later(self.group.recycle_seconds, self._recycle_by_time)
            try:
                status = await process.wait()
            finally:
                if timer is not None:
                    timer.cancel()
            uptime = loop.time() - started
            self.started_at = None
            how = f"pid {process.pid} ended ({describe_exit(status)}) after {uptime:.1f}s"
            if self._retiring:
                log.info("%s: stopped: %s", self.name, how)
                return
            if self._recycling or status == 0:
                self._quick_exits = self._quick_exits + 1 if uptime < QUICK_EXIT and not self._recycling else 0
                if self._quick_exits < QUICK_EXITS_BEFORE_BACKOFF:
                    # A recycled process was healthy: its successor starts at once, with a fresh backoff.
                    self._backoff.reset()
                    log.info("%s: %s; starting a fresh one", self.name, how)
                    continue
                delay = self._backoff.next_delay()
                log.warning("%s: %s, %d times in a row at once; restarting in %.2fs", self.name, how,
                            self._quick_exits, delay)  # fmt: skip
                await self._pause(delay)
                continue
            self.crashes += 1
            if uptime >= self.settings.stable_after:
                self._backoff.reset()
            delay = self._backoff.next_delay()
            log.warning("%s: crashed: %s; restarting in %.2fs", self.name, how, delay)
            await self._pause(delay)
        self.process = None
