"""The manager: worker groups kept at their configured size, reconfigured in place, drained on the way out.

:meth:`Manager.apply` moves from the running configuration to a new one, touching only what changed: a new group
is started, a removed one stopped, a group whose only change is ``processes`` grows or shrinks (its other
processes keep running), and a group with any other change gets new processes before the old ones are stopped,
so it never stops serving. Stopping a process always lets its running job finish (see
:mod:`geartrain.manager.process`).
"""

from __future__ import annotations

import asyncio
import logging

from geartrain.manager.config import GroupConfig, ManagerConfig, ManagerSettings
from geartrain.manager.process import WorkerSlot

log = logging.getLogger("geartrain.manager")


class GroupRunner:
    """The processes of one group."""

    def __init__(self, config: GroupConfig, settings: ManagerSettings) -> None:
        self.config = config
        self.settings = settings
        self.slots: list[WorkerSlot] = []

    def _describe(self) -> str:
        group = self.config
        what = f"{group.callable} for {', '.join(group.functions)}" if group.is_python else " ".join(group.command)
        return f"{what} on {', '.join(group.servers)}"

    def start(self) -> None:
        log.info("group %s: starting %d process(es): %s", self.config.name, self.config.processes, self._describe())
        self.resize(self.config.processes)

    def resize(self, processes: int) -> list[WorkerSlot]:
        """Start processes, or take the newest ones out, to have ``processes``; returns the slots taken out (the
        caller stops them)."""
        while len(self.slots) < processes:
            slot = WorkerSlot(self.config, len(self.slots) + 1, self.settings)
            self.slots.append(slot)
            slot.start()
        removed: list[WorkerSlot] = []
        while len(self.slots) > processes:
            removed.append(self.slots.pop())
        return removed

    def update(self, config: GroupConfig, settings: ManagerSettings) -> None:
        """New settings that the running processes can keep running under (see ``updatable_in_place``)."""
        self.config, self.settings = config, settings
        for slot in self.slots:
            slot.update(config, settings)

    def take_all(self) -> list[WorkerSlot]:
        slots, self.slots = self.slots, []
        return slots

    @property
    def pids(self) -> list[int | None]:
        return [slot.pid for slot in self.slots]


class Manager:
    """Runs the groups of a :class:`~geartrain.manager.config.ManagerConfig` until :meth:`request_stop`."""

    def __init__(self, config: ManagerConfig) -> None:
        self.config = ManagerConfig(config.settings, {})
        self.groups: dict[str, GroupRunner] = {}
        self._initial = config
        self._stop = asyncio.Event()
        self._leaving: set[WorkerSlot] = set()  # taken out of their group, finishing their job

    def request_stop(self) -> None:
        """Drain: every process finishes its job and exits; :meth:`run` returns when all are gone."""
        if not self._stop.is_set():
            log.info("stopping: draining %d process(es)", sum(len(group.slots) for group in self.groups.values()))
        self._stop.set()

    def kill_all(self) -> None:
        """SIGKILL every process (and its process group) now: the impatient second stop signal."""
        self.request_stop()
        for group in self.groups.values():
            for slot in group.slots:
                slot.kill()
        for slot in self._leaving:
            slot.kill()

    async def run(self) -> None:
        self.apply(self._initial)
        await self._stop.wait()
        for group in list(self.groups.values()):
            self._retire(group.take_all())
        while self._leaving:
            await asyncio.gather(*(slot.stop() for slot in list(self._leaving)))
        log.info("stopped")

    def _retire(self, slots: list[WorkerSlot]) -> None:
        """Stop these slots in the background; :meth:`run` waits for them before it returns."""
        for slot in slots:
            self._leaving.add(slot)
            slot.stop().add_done_callback(lambda _, slot=slot: self._leaving.discard(slot))  # type: ignore[misc]

    def apply(self, config: ManagerConfig) -> None:
        """Move to ``config``, leaving the processes of unchanged groups alone."""
        if self._stop.is_set():
            return
        if config.settings != self.config.settings and self.groups:
            log.info("manager settings changed: %s", config.settings)
            for running in self.groups.values():
                running.update(running.config, config.settings)
        for name in [name for name in self.groups if name not in config.groups]:
            log.info("group %s: removed from the configuration, stopping it", name)
            self._retire(self.groups.pop(name).take_all())
        for name, group in config.groups.items():
            runner = self.groups.get(name)
            if runner is None:
                self.groups[name] = runner = GroupRunner(group, config.settings)
                runner.start()
            elif runner.config == group:
                continue
            elif runner.config.updatable_in_place(group):
                self._update_in_place(runner, group, config.settings)
            else:
                log.info("group %s: configuration changed, replacing its processes", name)
                self.groups[name] = replacement = GroupRunner(group, config.settings)
                replacement.start()
                self._retire(runner.take_all())
        self.config = config

    def report(self) -> list[str]:
        """The state of every process, one line each (logged on SIGUSR1), failing ones marked ``FAILING``."""
        now = asyncio.get_running_loop().time()
        slots = [slot for group in self.groups.values() for slot in group.slots]
        failing = sum(1 for slot in slots if slot.failing)
        summary = f"{len(self.groups)} group(s), {len(self._leaving)} process(es) finishing their job"
        lines = [summary + (f", {failing} FAILING" if failing else "")]
        return lines + [slot.state(now) for slot in slots]

    def _update_in_place(self, runner: GroupRunner, group: GroupConfig, settings: ManagerSettings) -> None:
        old = runner.config
        if old.stop_timeout != group.stop_timeout:
            log.info("group %s: stop_timeout %gs -> %gs", group.name, old.stop_timeout, group.stop_timeout)
        if old.processes != group.processes:
            log.info("group %s: %d -> %d process(es)", group.name, old.processes, group.processes)
        runner.update(group, settings)
        self._retire(runner.resize(group.processes))

    def pids(self) -> dict[str, list[int | None]]:
        """The running process ids by group (None for a place whose process is being restarted)."""
        return {name: group.pids for name, group in self.groups.items()}
