"""kill -9 of worker and client processes in the middle of jobs: the server stays up, every acknowledged
background job still runs to the end, and jobs nobody waits for any more are dropped, not kept forever."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from serverproc import ServerProcess

from geartrain.protocol.packets import PacketType as P
from servers import GearmanSocket, admin, admin_raw, parse_status, wait_until

BACKGROUND_JOBS = 30

# A worker process: announces each job as it starts and ends it after a pause, so the test can kill it mid-job.
WORKER = """
import sys, time
from geartrain import SyncWorker
def run(job):
    print("start", job.unique, flush=True)
    time.sleep(0.15)
    print("done", job.unique, flush=True)
    return job.data
worker = SyncWorker(sys.argv[1])
worker.register(sys.argv[2], run)
worker.work()
"""

# A client process waiting on a foreground job that no worker serves yet.
CLIENT = """
import sys
from geartrain import SyncClient
with SyncClient(sys.argv[1]) as client:
    print("submitting", flush=True)
    client.do("waited", b"payload")
"""


class Peer:
    """A worker or client subprocess whose output lines are collected as they come."""

    def __init__(self, code: str, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.strip())

    def started(self) -> set[str]:
        return {line.split()[1] for line in list(self.lines) if line.startswith("start ")}

    def done(self) -> set[str]:
        return {line.split()[1] for line in list(self.lines) if line.startswith("done ")}

    def mid_job(self) -> bool:
        return bool(self.started() - self.done())

    def kill9(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


def test_kill_9_of_workers_and_clients_mid_job_loses_no_acknowledged_job(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "server.log", "--store", f"sqlite://{tmp_path}/queue.db")
    peers: list[Peer] = []
    try:
        pid = admin_raw(server.address, "getpid")
        uniques = [f"bg-{i}" for i in range(BACKGROUND_JOBS)]
        with GearmanSocket(server.address) as client:
            for unique in uniques:
                client.request(P.SUBMIT_JOB_BG, b"work", unique.encode(), b"x", reply=P.JOB_CREATED)

        # Clients killed while waiting for their foreground jobs.
        waiting = [Peer(CLIENT, server.address) for _ in range(3)]
        peers += waiting
        wait_until(lambda: (row := parse_status(admin(server.address, "status")).get("waited")) and row.total == 3)
        for client_process in waiting:
            client_process.kill9()
        # Workers killed mid-job, three times over, each replaced by a new one.
        killed_mid_job: set[str] = set()
        for _ in range(3):
            victim = Peer(WORKER, server.address, "work")
            peers.append(victim)
            wait_until(victim.mid_job, timeout=30, message="a worker in the middle of a job")
            killed_mid_job |= victim.started() - victim.done()
            victim.kill9()
        survivors = [Peer(WORKER, server.address, "work") for _ in range(2)]
        peers += survivors
        # The abandoned foreground jobs of the killed clients need a worker of their own function to be dropped.
        peers.append(Peer(WORKER, server.address, "waited"))

        def everything_done() -> bool:
            done = set().union(*(peer.done() for peer in peers))
            return set(uniques) <= done

        wait_until(everything_done, timeout=60, message="every acknowledged background job to run to the end")
        assert killed_mid_job, "no worker was killed in the middle of a job"
        wait_until(
            lambda: all(row.total == 0 for row in parse_status(admin(server.address, "status")).values()),
            message="nothing left queued or running",
        )
        assert admin_raw(server.address, "getpid") == pid  # the same server process all along
        assert server.alive()
    finally:
        for peer in peers:
            peer.kill9()
        assert server.stop() == 0, server.log()
