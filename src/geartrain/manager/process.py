"""One supervised worker process: start it, restart it when it dies, recycle it, stop it without cutting a job off.

A :class:`WorkerSlot` is one of a group's ``processes`` places. Its task starts a process and waits for it; when
the process exits on its own it is started again: at once when it exited 0 (a Python worker recycled after its
jobs) or was recycled by the clock, after an exponential backoff when it crashed, and the slot is marked failing
when its processes keep failing early (the rules are :mod:`geartrain.manager.restarts`).

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

from geartrain.manager.child import EXIT_IMPORT
from geartrain.manager.config import GroupConfig, ManagerSettings
from geartrain.manager.programs import resolve_command
from geartrain.manager.restarts import Restart, RestartPolicy

log = logging.getLogger("geartrain.manager")

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
    ``GEARMAN_SERVER``, which libgearman's tools and geartrain's read, and the client id the process should show
    in the server's ``workers`` list in ``GEARTRAIN_CLIENT_ID`` (``geartrain work`` sends it); geartrain's own
    programs at the start of a command come from this installation (:mod:`geartrain.manager.programs`). The
    group's ``env`` comes last and wins.
    """
    env = dict(os.environ if environ is None else environ)
    env["GEARMAN_SERVER"] = ",".join(group.servers)
    env["GEARTRAIN_WORKER_GROUP"] = group.name
    env["GEARTRAIN_WORKER_INDEX"] = str(index)
    env["GEARTRAIN_CLIENT_ID"] = client_id(group, index)
    env.update(group.env)
    if group.is_python:
        assert group.callable is not None
        argv = [sys.executable, "-m", "geartrain.manager.child", "--callable", group.callable]
        argv += [arg for server in group.servers for arg in ("--server", server)]
        argv += [arg for function in group.functions for arg in ("--function", function)]
        argv += ["--concurrency", str(group.concurrency), "--recycle-jobs", str(group.recycle_jobs)]
        argv += ["--client-id", client_id(group, index)]
        return LaunchSpec(tuple(argv), env, group.cwd)
    return LaunchSpec(resolve_command(group.command), env, group.cwd)


def client_id(group: GroupConfig, index: int) -> str:
    """``GROUP-N``: how process ``index`` of ``group`` names itself to the server (SET_CLIENT_ID)."""
    return f"{group.name}-{index}"


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
        self.restart_at: float | None = None  # loop time of the next start, while waiting for it
        self.policy = RestartPolicy(settings)
        self._retiring = False
        self._recycling = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping: asyncio.Future[None] | None = None
        self._before_exec = _parent_death_signal()

    @property
    def pid(self) -> int | None:
        process = self.process
        return process.pid if process is not None and process.returncode is None else None

    @property
    def failing(self) -> bool:
        return self.policy.failing

    def state(self, now: float) -> str:
        """One line for the status report: pid and uptime, or why there is no process; and whether it is failing."""
        if self.pid is not None and self.started_at is not None:
            running = f"pid {self.pid}, up {now - self.started_at:.0f}s"
        elif self._retiring:
            running = "stopping"
        elif self.restart_at is not None:
            running = f"waiting to restart in {max(0.0, self.restart_at - now):.1f}s"
        else:
            running = "starting"
        failing = f"{self.policy.describe()}, " if self.policy.failing else ""
        return f"{self.name}: {failing}{running}, {self.starts} start(s), {self.crashes} crash(es)"

    def update(self, group: GroupConfig, settings: ManagerSettings) -> None:
        """Take a new ``stop_timeout`` and manager settings (backoff, stable_after) without a restart."""
        self.group, self.settings = group, settings
        self.policy.update(settings)

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
        if delay <= 0:
            return
        self.restart_at = asyncio.get_running_loop().time() + delay
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()
        finally:
            self.restart_at = None

    def _stayed_up(self) -> None:
        if self.policy.stayed_up():
            log.info("%s: up for %gs: no longer failing", self.name, self.settings.stable_after)

    def _log_failing(self, restart: Restart) -> None:
        if restart.recovered:
            log.info("%s: no longer failing", self.name)
        if restart.became_failing:
            settings = self.settings
            log.error(
                "%s: FAILING: %d starts in a row failed or ended within %gs; restarts back off up to %gs until "
                "a process stays up %gs",
                self.name, self.policy.failures, settings.stable_after, settings.backoff_max, settings.stable_after,
            )  # fmt: skip

    def _describe_exit(self, status: int) -> str:
        text = describe_exit(status)
        if self.group.is_python and status == EXIT_IMPORT:
            text += f": cannot import {self.group.callable}"  # the child has written why on stderr
        return text

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
            restart = self.policy.could_not_start(f"cannot start {spec.argv[0]}: {exc}")
            log.error("%s: %s; retrying in %.2fs", self.name, self.policy.last_failure, restart.delay)
            self._log_failing(restart)
            await self._pause(restart.delay)
            return None

    async def _watch(self, process: asyncio.subprocess.Process) -> tuple[int, float]:
        """Wait for the process to end, recycling it by the clock; returns its exit status and its uptime."""
        loop = asyncio.get_running_loop()
        self.process, self._recycling = process, False
        self.starts += 1
        self.started_at = started = loop.time()
        log.info("%s: started, pid %d", self.name, process.pid)
        if self._retiring:  # stop() came while the process was being started
            self._signal(signal.SIGTERM)
        timers = [loop.call_later(self.settings.stable_after, self._stayed_up)]
        if self.group.recycle_seconds:
            timers.append(loop.call_later(self.group.recycle_seconds, self._recycle_by_time))
        try:
            status = await process.wait()
        finally:
            for timer in timers:
                timer.cancel()
        self.started_at = None
        return status, loop.time() - started

    async def _keep_running(self) -> None:
        while not self._retiring:
            process = await self._spawn()
            if process is None:
                continue
            status, uptime = await self._watch(process)
            how = f"pid {process.pid} ended ({self._describe_exit(status)}) after {uptime:.1f}s"
            if self._retiring:
                log.info("%s: stopped: %s", self.name, how)
                return
            restart = self.policy.ended(status, uptime, self._recycling, how)
            if not restart.paced:
                log.info("%s: %s; starting a fresh one", self.name, how)
            elif self._recycling or status == 0:
                log.warning("%s: %s, %d times in a row at once; restarting in %.2fs", self.name, how,
                            self.policy.quick_exits, restart.delay)  # fmt: skip
            else:
                self.crashes += 1
                log.warning("%s: crashed: %s; restarting in %.2fs", self.name, how, restart.delay)
            self._log_failing(restart)
            await self._pause(restart.delay)
        self.process = None
