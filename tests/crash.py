"""Kill -9 a server mid-stream on a store, restart it on the same store, and account for every job.

Guarantees checked: every job whose JOB_CREATED arrived before the kill either was seen finished (the worker got a
reply after its WORK_COMPLETE, which the server holds until the store forgot the job) or runs after the restart;
no job seen finished runs again.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from geartrain.protocol.packets import PacketType as P
from servers import GearmanSocket, admin_raw, encode_req, free_port, wait_until

WINDOW = 200  # submits in flight per client


@dataclass
class Ledger:
    acknowledged: set[bytes] = field(default_factory=set)
    confirmed: set[bytes] = field(default_factory=set)  # WORK_COMPLETE sent and a later reply received
    completed: set[bytes] = field(default_factory=set)  # WORK_COMPLETE sent (the server may not have read it)
    started: set[bytes] = field(default_factory=set)  # JOB_ASSIGN received
    lock: threading.Lock = field(default_factory=threading.Lock)


class ServerProcess:
    def __init__(self, store_url: str, *flags: str) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        command = [
            sys.executable,
            "-m",
            "geartrain",
            "server",
            "--port",
            str(self.port),
            "--store",
            store_url,
            "--log-file",
            "stderr",
            "--verbose",
            "WARNING",
            *flags,
        ]
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_until(self._ready, timeout=60, message="server start")

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            stderr = self.proc.stderr.read().decode() if self.proc.stderr else ""
            raise AssertionError(f"server exited: {stderr}")
        try:
            return admin_raw(self.address, "version", timeout=1).startswith(b"OK")
        except OSError:
            return False

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill9()


def _submitter(address: str, uniques: list[bytes], ledger: Ledger) -> None:
    try:
        with GearmanSocket(address, timeout=30) as client:
            in_flight: list[bytes] = []
            for unique in uniques:
                client.send(P.SUBMIT_JOB_BG, b"crash", unique, unique)
                in_flight.append(unique)
                if len(in_flight) >= WINDOW:
                    _read_acks(client, in_flight, ledger, keep=WINDOW // 2)
            _read_acks(client, in_flight, ledger, keep=0)
    except (OSError, ConnectionError, AssertionError):
        return  # the server was killed


def _read_acks(client: GearmanSocket, in_flight: list[bytes], ledger: Ledger, keep: int) -> None:
    while len(in_flight) > keep:
        client.expect(P.JOB_CREATED)
        with ledger.lock:
            ledger.acknowledged.add(in_flight.pop(0))


def _worker(address: str, ledger: Ledger, stop: threading.Event) -> None:
    finished: list[bytes] = []  # WORK_COMPLETE sent, not yet confirmed by a later reply
    try:
        with GearmanSocket(address, timeout=30) as worker:
            worker.send(P.CAN_DO, b"crash")
            pending = b""  # the last WORK_COMPLETE goes out with the next GRAB, in one write
            while not stop.is_set():
                worker.sock.sendall(pending + encode_req(P.GRAB_JOB_UNIQ))
                if pending:
                    with ledger.lock:
                        ledger.completed.update(finished)
                pending = b""
                reply = worker.recv()
                with ledger.lock:
                    ledger.confirmed.update(finished)
                finished.clear()
                if reply.type == P.NO_JOB:
                    time.sleep(0.01)
                    continue
                if reply.type != P.JOB_ASSIGN_UNIQ:
                    continue
                handle, _, unique, _ = reply.body.split(b"\0", 3)
                with ledger.lock:
                    ledger.started.add(unique)
                pending = encode_req(P.WORK_COMPLETE, handle, b"")
                finished.append(unique)
    except (OSError, ConnectionError, AssertionError):
        return


def drain(address: str, deadline_s: float = 120) -> list[bytes]:
    """Run every queued job once with one worker; return the uniques in the order they ran."""
    ran: list[bytes] = []
    deadline = time.monotonic() + deadline_s
    with GearmanSocket(address, timeout=30) as worker:
        worker.send(P.CAN_DO, b"crash")
        pending = b""
        while time.monotonic() < deadline:
            worker.sock.sendall(pending + encode_req(P.GRAB_JOB_UNIQ))
            pending = b""
            reply = worker.recv()
            if reply.type == P.NO_JOB:
                if b"crash\t0\t" in admin_raw(address, "status") or b"crash" not in admin_raw(address, "status"):
                    return ran
                continue
            handle, _, unique, _ = reply.body.split(b"\0", 3)
            ran.append(unique)
            pending = encode_req(P.WORK_COMPLETE, handle, b"")
    raise AssertionError("queue did not drain in time")


def crash_and_recover(store_url: str, jobs: int = 10_000, workers: int = 2, seed: int | None = None) -> dict[str, int]:
    """The whole scenario; raises AssertionError on a lost or repeated job. Returns counts for the report."""
    seed = seed if seed is not None else int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    ledger = Ledger()
    uniques = [f"job-{i}".encode() for i in range(jobs)]
    server = ServerProcess(store_url)
    try:
        stop = threading.Event()
        threads = [threading.Thread(target=_submitter, args=(server.address, uniques[i::2], ledger)) for i in range(2)]
        threads += [threading.Thread(target=_worker, args=(server.address, ledger, stop)) for _ in range(workers)]
        for thread in threads:
            thread.start()
        # Kill somewhere in the stream: after a random share of the acknowledgements has arrived.
        target = rng.randint(jobs // 10, jobs * 9 // 10)
        wait_until(
            lambda: len(ledger.acknowledged) >= target or not threads[0].is_alive(),
            timeout=120,
            message=f"{target} acknowledgements",
        )
        server.kill9()
        stop.set()
        for thread in threads:
            thread.join(30)
    finally:
        server.stop()
    with ledger.lock:
        acknowledged, confirmed = set(ledger.acknowledged), set(ledger.confirmed)
        completed, started = set(ledger.completed), set(ledger.started)
    restarted = ServerProcess(store_url)
    try:
        ran = drain(restarted.address)
    finally:
        restarted.stop()
    rerun = set(ran)
    # A job whose WORK_COMPLETE was sent but not confirmed may or may not run again (the kill may have come
    # before the server read it); any other acknowledged job must have run to the end or run again.
    lost = acknowledged - completed - rerun
    unfinished = (started - completed) & acknowledged
    repeated = confirmed & rerun
    assert unfinished <= rerun, f"seed {seed}: jobs cut off mid-run were lost: {sorted(unfinished - rerun)[:5]}"
    assert not lost, f"seed {seed}: {len(lost)} acknowledged jobs lost, e.g. {sorted(lost)[:5]}"
    assert not repeated, f"seed {seed}: {len(repeated)} finished jobs ran again, e.g. {sorted(repeated)[:5]}"
    assert len(ran) == len(rerun), f"seed {seed}: a job ran twice after the restart"
    assert rerun <= set(uniques), f"seed {seed}: unknown jobs after restart"
    return {"seed": seed, "acknowledged": len(acknowledged), "confirmed": len(confirmed), "rerun": len(rerun)}
