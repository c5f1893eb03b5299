"""Running the third-party programs of the interop tests (gearman, gearadmin, php, perl), always with timeouts."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from servers import GearmanServer, require_program

SCRIPTS = Path(__file__).resolve().parent / "scripts"
RUN_TIMEOUT = 30.0  # seconds for any one program run; nothing here should take more than a second or two


def run(
    cmd: list[str], *, input: str | None = None, stdin: Path | None = None, timeout: float = RUN_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Run a program to completion. Without input or stdin it reads /dev/null, so it can never wait on a tty."""
    if stdin is not None:
        with stdin.open("rb") as stream:
            return subprocess.run(cmd, stdin=stream, capture_output=True, timeout=timeout, text=True)
    if input is None:
        return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, text=True)
    return subprocess.run(cmd, input=input, capture_output=True, timeout=timeout, text=True)


def gearman_cmd(server: GearmanServer, *args: str) -> list[str]:
    return [require_program("gearman"), "-h", server.host, "-p", str(server.port), *args]


def gearadmin(server: GearmanServer, *args: str) -> subprocess.CompletedProcess[str]:
    return run([require_program("gearadmin"), "-h", server.host, "-p", str(server.port), *args])


def php_cmd(server: GearmanServer, script: str, *args: str) -> list[str]:
    return [require_program("php-gearman"), str(SCRIPTS / script), server.host, str(server.port), *args]


def perl_cmd(server: GearmanServer, script: str, *args: str) -> list[str]:
    return [require_program("perl-gearman"), str(SCRIPTS / script), server.host, str(server.port), *args]


def run_json(cmd: list[str], timeout: float = RUN_TIMEOUT) -> Any:
    """Run a helper script that prints one JSON document; fail with its output if it does not exit 0."""
    result = run(cmd, timeout=timeout)
    assert result.returncode == 0, f"{cmd} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    return json.loads(result.stdout)


@dataclass
class Child:
    """A program running in the background; its output goes to files so that it can never block on a pipe."""

    name: str
    process: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def wait(self, timeout: float = RUN_TIMEOUT) -> int:
        """Wait for the exit status; a program still running after `timeout` fails the test (with its output)."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError(
                f"{self.name} still running after {timeout}s\nstdout: {self.stdout}\nstderr: {self.stderr}"
            ) from None

    def json(self) -> Any:
        return json.loads(self.stdout)

    def json_lines(self) -> list[Any]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


class Children:
    """Background programs of one test; whatever is still running at teardown is stopped."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.children: list[Child] = []

    def spawn(self, name: str, cmd: list[str]) -> Child:
        index = len(self.children)
        stdout_path = self.workdir / f"{index}-{name}.out"
        stderr_path = self.workdir / f"{index}-{name}.err"
        with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
            process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        child = Child(name, process, stdout_path, stderr_path)
        self.children.append(child)
        return child

    def stop_all(self) -> None:
        for child in self.children:
            child.stop()
