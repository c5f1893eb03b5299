"""python-gearman 2.x scripts on geartrain.compat.gearman: the classic "reverse" worker and client, changed only
in their import line, against geartrain and the C gearmand; then the API surface in process."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import geartrain.compat.gearman as gearman
from servers import GearmanServer, free_port, status_of, wait_until

SCRIPTS = Path(__file__).resolve().parent / "scripts"
RUN_TIMEOUT = 60.0


def client(server: str, scenario: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, str(SCRIPTS / "reverse_client.py"), server, scenario],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        stdin=subprocess.DEVNULL,
    )
    assert (result.returncode, result.stderr) == (0, ""), result
    return result.stdout.splitlines()


class WorkerScript:
    def __init__(self, server: GearmanServer, workdir: Path, max_jobs: int = 0) -> None:
        self.out = workdir / f"worker-{max_jobs}.out"
        with self.out.open("w") as out:
            self.process = subprocess.Popen(
                [sys.executable, str(SCRIPTS / "reverse_worker.py"), server.address, str(max_jobs)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    @property
    def output(self) -> list[str]:
        return self.out.read_text().splitlines()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


@pytest.fixture
def worker(gearman_server: GearmanServer, tmp_path: Path) -> Iterator[WorkerScript]:
    script = WorkerScript(gearman_server, tmp_path)

    def registered() -> bool:
        assert script.process.poll() is None, script.output
        row = status_of(gearman_server, "reverse")
        return row is not None and row.workers == 1

    wait_until(registered, message="the python-gearman worker to register")
    yield script
    script.stop()


def test_the_classic_reverse_example(gearman_server: GearmanServer, worker: WorkerScript) -> None:
    assert client(gearman_server.address, "reverse") == ["Job hello-1 finished!  Result: COMPLETE - !dlroW olleH"]
    assert "Reversing string: Hello World!" in worker.output


def test_multiple_jobs(gearman_server: GearmanServer, worker: WorkerScript) -> None:
    assert client(gearman_server.address, "multiple") == [f"job {n} -> {n} boj (COMPLETE)" for n in range(5)]


def test_progress_data_warnings(gearman_server: GearmanServer, worker: WorkerScript) -> None:
    assert client(gearman_server.address, "progress") == [
        "state COMPLETE result done after 3 steps",
        "data updates: ['step 1', 'step 2', 'step 3']",
        "warning updates: ['almost done']",
        "last status: 3/3",
    ]


def test_failures(gearman_server: GearmanServer, worker: WorkerScript) -> None:
    assert client(gearman_server.address, "failures") == [
        "fail: state FAILED complete True",
        "exception: state FAILED exception custom exception: boom",
    ]


def test_admin_client(gearman_server: GearmanServer, worker: WorkerScript) -> None:
    lines = client(gearman_server.address, "admin")
    assert lines[0] == "ping took less than 10 s: True"
    assert lines[1].startswith("version: OK 1.1.20")  # geartrain reports gearmand's version with its own suffix
    assert lines[2:] == [
        "maxqueue: OK",
        "worker tasks: exception,fail,progress,reverse",
        "cancel unknown: ERR UNKNOWN_JOB",
    ]


def test_background_job_then_a_worker(gearman_server: GearmanServer, tmp_path: Path) -> None:
    assert client(gearman_server.address, "background") == [
        "background complete: True, state CREATED",
        "status known=True running=False",
        "admin status: task=reverse queued=1 running=0",
    ]
    worker = WorkerScript(gearman_server, tmp_path, max_jobs=1)  # after_job() stops it after one job
    try:
        assert worker.process.wait(RUN_TIMEOUT) == 0, worker.output
    finally:
        worker.stop()
    assert worker.output == ["Reversing string: queued for later", "worker stopped after 1 jobs"]


def test_timeout(gearman_server: GearmanServer) -> None:
    lines = client(gearman_server.address, "timeout")
    assert lines[0].startswith("Job ") and lines[0].endswith(" timed out!")
    assert lines[1] == "state CREATED timed_out True"


def test_server_unavailable() -> None:
    assert client(f"127.0.0.1:{free_port()}", "unavailable") == ["ServerUnavailable: ServerUnavailable"]


# ---------------------------------------------------------------------------------------------- in process


def test_names() -> None:
    # python-gearman scripts also import from its submodules.
    from geartrain.compat.gearman.errors import ConnectionError, ExceededConnectionAttempts, ServerUnavailable

    assert gearman.PRIORITY_NONE is None and (gearman.PRIORITY_LOW, gearman.PRIORITY_HIGH) == ("LOW", "HIGH")
    states = (gearman.JOB_PENDING, gearman.JOB_CREATED, gearman.JOB_FAILED, gearman.JOB_COMPLETE, gearman.JOB_UNKNOWN)
    assert states == ("PENDING", "CREATED", "FAILED", "COMPLETE", "UNKNOWN")
    assert gearman.constants.JOB_COMPLETE == "COMPLETE"
    for error in (ConnectionError, ServerUnavailable, ExceededConnectionAttempts, gearman.errors.InvalidClientState):
        assert issubclass(error, gearman.errors.GearmanError)
    assert gearman.job.GearmanJobRequest is gearman.GearmanJobRequest


class JSONDataEncoder(gearman.DataEncoder):
    @classmethod
    def encode(cls, encodable_object: Any) -> str:
        return json.dumps(encodable_object)

    @classmethod
    def decode(cls, decodable_string: bytes) -> Any:
        return json.loads(decodable_string)


class JSONGearmanClient(gearman.GearmanClient):
    data_encoder = JSONDataEncoder


class JSONGearmanWorker(gearman.GearmanWorker):
    data_encoder = JSONDataEncoder


def test_data_encoder_and_worker_hooks(gearman_server: GearmanServer) -> None:
    worker = JSONGearmanWorker([gearman_server.address])
    seen: list[Any] = []

    def total(gearman_worker: gearman.GearmanWorker, job: gearman.GearmanJob) -> Any:
        seen.append((job.task, job.unique, job.data))
        gearman_worker.send_job_data(job, {"partial": sum(job.data["numbers"][:1])})
        return {"total": sum(job.data["numbers"])}

    worker.register_task("total", total)
    thread = threading.Thread(target=worker.work, kwargs={"poll_timeout": 0.05}, daemon=True)
    thread.start()
    json_client = JSONGearmanClient([gearman_server.address])
    try:
        request = json_client.submit_job("total", {"numbers": [1, 2, 3]}, unique="sum-1", poll_timeout=30)
        assert (request.state, request.result) == (gearman.JOB_COMPLETE, {"total": 6})
        assert list(request.data_updates) == [{"partial": 1}]
        assert request.job.handle and request.job.connection.gearman_port == gearman_server.port
        assert seen == [("total", "sum-1", {"numbers": [1, 2, 3]})]
    finally:
        json_client.shutdown()
        worker.shutdown()
        thread.join(30)
    assert not thread.is_alive()


def test_status_of_a_queued_job_and_wait_later(gearman_server: GearmanServer) -> None:
    gm_client = gearman.GearmanClient([gearman_server.address])
    try:
        request = gm_client.submit_job("later", "data", wait_until_complete=False)
        assert (request.state, request.complete, request.timed_out) == (gearman.JOB_CREATED, False, False)
        status = gm_client.get_job_status(request).status
        assert (status["known"], status["running"], status["numerator"]) == (True, False, 0)
        (request,) = gm_client.wait_until_jobs_completed([request], poll_timeout=0.2)
        assert request.timed_out and request.state == gearman.JOB_CREATED

        worker = gearman.GearmanWorker([gearman_server.address])
        worker.register_task("later", lambda gearman_worker, job: job.data.upper())
        worker.after_job = lambda: False  # type: ignore[method-assign]  # stop after one job
        worker.work()
        (request,) = gm_client.wait_until_jobs_completed([request], poll_timeout=30)
        assert (request.state, request.result, request.timed_out) == (gearman.JOB_COMPLETE, "DATA", False)
    finally:
        gm_client.shutdown()
