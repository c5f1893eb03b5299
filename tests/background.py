"""Programs a test runs in the background (workers, clients), for tests/cli (clitools) and tests/interop (programs).

Their output goes to files, never to a pipe that could fill up and block them; waiting is bounded and a program
that overstays fails the test with its output; a group stops whatever still runs when the test ends. The two
suites differ only in how they read the output (bytes, text) and in the environment they give the programs.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

RUN_TIMEOUT = 30.0  # seconds for any one program run; nothing here should take more than a second or two


def _shown(output: bytes | str) -> str:
    # Bytes as their repr (control bytes stay visible), text as it is (readable line by line).
    return repr(output) if isinstance(output, bytes) else output


@dataclass
class BackgroundProgram:
    """A program running in the background; ``stdout`` and ``stderr`` are read from its output files by the
    subclass, as bytes or as text."""

    name: str
    process: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path

    @property
    def stdout(self) -> bytes | str:
        raise NotImplementedError

    @property
    def stderr(self) -> bytes | str:
        raise NotImplementedError

    def wait(self, timeout: float = RUN_TIMEOUT) -> int:
        """Wait for the exit status; a program still running after `timeout` fails the test (with its output)."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError(
                f"{self.name} still running after {timeout}s\nstdout: {_shown(self.stdout)}\n"
                f"stderr: {_shown(self.stderr)}"
            ) from None

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


ProgramT = TypeVar("ProgramT", bound=BackgroundProgram)


class ProgramGroup(Generic[ProgramT]):
    """Background programs of one test, numbered in start order (their output files are ``N-name.out/.err``
    in ``workdir``); whatever still runs at teardown is stopped."""

    def __init__(self, workdir: Path, kind: type[ProgramT]) -> None:
        self.workdir = workdir
        self.kind = kind
        self.started: list[ProgramT] = []

    def _launch(self, name: str, cmd: list[str], env: dict[str, str] | None) -> ProgramT:
        index = len(self.started)
        stdout_path = self.workdir / f"{index}-{name}.out"
        stderr_path = self.workdir / f"{index}-{name}.err"
        with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
            process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env)
        child = self.kind(name, process, stdout_path, stderr_path)
        self.started.append(child)
        return child

    def stop_all(self) -> None:
        for child in self.started:
            child.stop()


GroupT = TypeVar("GroupT", bound="ProgramGroup[Any]")


@contextmanager
def program_group(tmp_path: Path, subdir: str, make: Callable[[Path], GroupT]) -> Iterator[GroupT]:
    """The body of a fixture: a group whose output files go to ``tmp_path/subdir``, stopped after the test."""
    workdir = tmp_path / subdir
    workdir.mkdir()
    group = make(workdir)
    try:
        yield group
    finally:
        group.stop_all()
