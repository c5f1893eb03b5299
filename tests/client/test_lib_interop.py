"""Our client against third-party workers (PHP pecl gearman, Perl Gearman::Worker, `gearman -w`), and our worker
serving third-party clients (PHP, Perl, the `gearman` CLI), on each server.

The PHP and Perl programs are the scripts of tests/interop/scripts (they print JSON). Programs run as asyncio
subprocesses so that our worker, on the test's event loop, keeps serving while they run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from libhelpers import running

from geartrain import (
    Client,
    JobFailed,
    ThreadJob,
    WorkComplete,
    WorkData,
    Worker,
    WorkerJob,
    WorkStatus,
    WorkWarning,
)
from servers import CHATTY_CALLBACK_EVENTS, GearmanServer, chatty_events, require_program

pytestmark = pytest.mark.interop

SCRIPTS = Path(__file__).resolve().parent.parent / "interop" / "scripts"
RUN_TIMEOUT = 30.0
GEARMAN_SUCCESS = 0
GEARMAN_WORK_FAIL = 24


@pytest.fixture(autouse=True)
def stop_leftover_programs() -> Iterator[None]:
    """A test that fails half-way must not leave a worker or client program running."""
    yield
    while Program.started:
        process = Program.started.pop()
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()


class Program:
    """A third-party program running beside the test's event loop."""

    started: ClassVar[list[asyncio.subprocess.Process]] = []

    def __init__(self, process: asyncio.subprocess.Process, cmd: list[str]) -> None:
        self.process = process
        self.cmd = cmd
        self.stdout = ""
        self.stderr = ""

    @classmethod
    async def start(cls, cmd: list[str], stdin: bytes | None = None) -> Program:
        process = await asyncio.create_subprocess_exec(
            *cmd,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        cls.started.append(process)
        program = cls(process, cmd)
        program._input = stdin
        return program

    _input: bytes | None = None

    async def wait(self, timeout: float = RUN_TIMEOUT) -> int:
        try:
            out, err = await asyncio.wait_for(self.process.communicate(self._input), timeout)
        except TimeoutError:
            self.process.kill()
            out, err = await self.process.communicate()
            raise AssertionError(f"{self.cmd} still running after {timeout}s: {out!r} {err!r}") from None
        self.stdout, self.stderr = out.decode(errors="replace"), err.decode(errors="replace")
        assert self.process.returncode is not None
        return self.process.returncode

    async def json(self) -> Any:
        code = await self.wait()
        assert code == 0, f"{self.cmd} exited {code}\n{self.stdout}\n{self.stderr}"
        return json.loads(self.stdout)

    def json_lines(self) -> list[Any]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]


def php(server: GearmanServer, script: str, *args: str) -> list[str]:
    return [require_program("php-gearman"), str(SCRIPTS / script), server.host, str(server.port), *args]


def perl(server: GearmanServer, script: str, *args: str) -> list[str]:
    return [require_program("perl-gearman"), str(SCRIPTS / script), server.host, str(server.port), *args]


def gearman(server: GearmanServer, *args: str) -> list[str]:
    return [require_program("gearman"), "-h", server.host, "-p", str(server.port), *args]


# ------------------------------------------------------------------ our worker's functions


async def reverse(job: WorkerJob) -> bytes:
    return job.data[::-1]


async def chatty(job: WorkerJob) -> bytes:
    await job.send_data(b"data-1")
    await job.send_status(1, 3)
    await job.send_warning(b"warning-1")
    await job.send_status(2, 3)
    await job.send_data(b"data-2")
    return b"done:" + job.data


async def fail(job: WorkerJob) -> bytes:
    raise JobFailed()


def progress(job: ThreadJob) -> bytes:
    job.send_status(1, 2)
    job.send_status(2, 2)
    return b"progress:" + job.data


def upper(job: ThreadJob) -> bytes:
    return job.data.upper()


def raises(job: ThreadJob) -> bytes:
    raise RuntimeError("a Python exception")


def our_worker(server: GearmanServer, **options: Any) -> Worker:
    worker = Worker(server.address, concurrency=4, **options)
    for name, fn in (
        ("reverse", reverse),
        ("chatty", chatty),
        ("fail_send", fail),
        ("fail_return", fail),
        ("perl_fail", fail),
        ("progress", progress),
        ("upper", upper),
        ("raises", raises),
    ):
        worker.register(name, fn)
    return worker


CHATTY_EVENTS = [
    WorkData(b"data-1"),
    WorkStatus(1, 3),
    WorkWarning(b"warning-1"),
    WorkStatus(2, 3),
    WorkData(b"data-2"),
    WorkComplete(b"done:x"),
]


# ------------------------------------------------------------------ our client, their workers


async def test_our_client_with_a_php_worker(gearman_server: GearmanServer) -> None:
    worker = await Program.start(php(gearman_server, "php_worker.php", "5"))
    async with Client(gearman_server.address) as client:
        assert await client.do("reverse", b"hello php", timeout=20) == b"php olleh"
        job = await client.submit("chatty", b"x")
        assert [event async for event in job] == CHATTY_EVENTS
        for name in ("fail_send", "fail_return"):
            with pytest.raises(JobFailed):
                await client.do(name, b"f", timeout=20)
        background = await client.submit("reverse", b"bg", unique="php-sees-this", background=True)
    assert await worker.wait() == 0, worker.stderr
    jobs = {line["workload"]: line for line in worker.json_lines()}
    assert jobs["bg"] == {"function": "reverse", "handle": background.handle, "unique": "php-sees-this",
                          "workload": "bg"}  # fmt: skip
    assert jobs["x"]["handle"] == job.handle


async def test_our_client_with_a_perl_worker(gearman_server: GearmanServer) -> None:
    worker = await Program.start(perl(gearman_server, "perl_worker.pl", "3"))
    async with Client(gearman_server.address) as client:
        assert await client.do("reverse", "hello perl", timeout=20) == b"lrep olleh"
        job = await client.submit("progress", b"p")
        assert [event async for event in job] == [WorkStatus(1, 2), WorkStatus(2, 2), WorkComplete(b"progress:p")]
        with pytest.raises(JobFailed):
            await client.do("perl_fail", b"doomed", timeout=20)
    assert await worker.wait() == 0, worker.stderr
    assert sorted(line["workload"] for line in worker.json_lines()) == ["doomed", "hello perl", "p"]


async def test_our_client_with_gearman_cli_workers(gearman_server: GearmanServer) -> None:
    tr = await Program.start(gearman(gearman_server, "-w", "-f", "upper", "-c", "4", "--", "tr", "a-z", "A-Z"))
    printer = await Program.start(gearman(gearman_server, "-w", "-f", "print", "-c", "1"))
    failing = await Program.start(
        gearman(gearman_server, "-w", "-f", "broken", "-c", "1", "--", "sh", "-c", "echo partial; exit 3")
    )
    async with Client(gearman_server.address) as client:
        results = await asyncio.gather(*(client.do("upper", word, timeout=20) for word in ("abc", "def", "ghi")))
        assert results == [b"ABC", b"DEF", b"GHI"]
        assert await client.do("upper", b"unique one", unique="cli-uniq", timeout=20) == b"UNIQUE ONE"
        assert await client.do("print", b"to stdout", timeout=20) == b""
        job = await client.submit("broken", b"x")
        with pytest.raises(JobFailed):
            await job.result(timeout=20)
        assert job.events[0] == WorkData(b"partial\n")
    for program in (tr, printer, failing):
        assert await program.wait() == 0, program.stderr
    assert printer.stdout == "to stdout"


# ------------------------------------------------------------------ our worker, their clients


async def test_our_worker_serves_php_clients(gearman_server: GearmanServer) -> None:
    async with running(our_worker(gearman_server)):
        out = await (
            await Program.start(php(gearman_server, "php_client.php", "reverse", "reverse", "hi", "u-1"))
        ).json()
        assert out == {"result": "ih", "rc": GEARMAN_SUCCESS}

        out = await (await Program.start(php(gearman_server, "php_client.php", "do"))).json()
        assert out["doNormal"] == {"result": "lamron", "rc": GEARMAN_SUCCESS}
        assert out["doHigh"] == {"result": "hgih", "rc": GEARMAN_SUCCESS}
        assert out["doLow"] == {"result": "wol", "rc": GEARMAN_SUCCESS}
        assert out["chatty"] == {"result": "data-1data-2done:x", "rc": GEARMAN_SUCCESS}
        assert out["fail_send"]["rc"] == GEARMAN_WORK_FAIL
        assert out["fail_return"]["rc"] == GEARMAN_WORK_FAIL
        assert all(
            out[name]["rc"] == GEARMAN_SUCCESS for name in ("doBackground", "doHighBackground", "doLowBackground")
        )

        out = await (await Program.start(php(gearman_server, "php_client.php", "tasks"))).json()
        assert out["runTasks"] is True and out["rc"] == GEARMAN_SUCCESS
        assert chatty_events(out["events"]) == CHATTY_CALLBACK_EVENTS
        completed = {e["task"]: e["data"] for e in out["events"] if e["kind"] == "complete"}
        assert completed == {"normal": "lamron-ksat", "high": "hgih-ksat", "chatty": "done:task-chatty"}
        assert [e["task"] for e in out["events"] if e["kind"] == "fail"] == ["fail"]


async def test_our_worker_serves_perl_clients(gearman_server: GearmanServer) -> None:
    async with running(our_worker(gearman_server)):
        out = await (await Program.start(perl(gearman_server, "perl_client.pl", "foreground"))).json()
        assert out["do_task"] == "olleh"
        assert out["do_task_high"] == "tnegru"
        assert out["do_task_fail"] == {"result": None, "on_fail": 1}
        assert out["taskset"] == {"alpha": "ahpla", "beta": "ateb", "gamma": "ammag", "progress": "progress:p"}
        assert out["statuses"] == [["1", "2"], ["2", "2"]]


async def test_our_worker_serves_the_gearman_cli(gearman_server: GearmanServer) -> None:
    async with running(our_worker(gearman_server)):
        cli = await Program.start(gearman(gearman_server, "-f", "upper", "abc", "def"))
        assert (await cli.wait(), cli.stdout) == (0, "ABCDEF")

        cli = await Program.start(gearman(gearman_server, "-f", "upper"), stdin=b"from stdin")
        assert (await cli.wait(), cli.stdout) == (0, "FROM STDIN")

        # WORK_DATA and the result on stdout as they come; the status lines (buffered by the tool) at its exit.
        cli = await Program.start(gearman(gearman_server, "-f", "chatty", "x"))
        assert await cli.wait() == 0, cli.stderr
        assert cli.stdout == "data-1data-2done:x33% Complete\n66% Complete\n"
        assert cli.stderr == "warning-1"

        cli = await Program.start(gearman(gearman_server, "-f", "fail_send", "x"))
        assert await cli.wait() == 1
        assert "Job failed" in cli.stderr

        # A Python exception becomes a plain WORK_FAIL, which the tool understands on both servers (no hang).
        cli = await Program.start(gearman(gearman_server, "-f", "raises", "x"))
        assert await cli.wait(timeout=10) == 1
        assert "Job failed" in cli.stderr

        cli = await Program.start(gearman(gearman_server, "-b", "-f", "reverse", "in the background"))
        assert await cli.wait() == 0
