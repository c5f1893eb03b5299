"""The geartrain-meta option in the client and the worker, against fake servers that take it or refuse it (as
gearmand does): when it is asked, what the submits and the jobs look like byte for byte, and what a worker's job
sees (``attempt``, ``meta``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pickle
import subprocess
import sys
import zlib

import pytest
from fakeserver import (
    CAN_DO,
    ERROR,
    GRAB_JOB_ALL,
    JOB_ASSIGN,
    JOB_ASSIGN_ALL,
    JOB_ASSIGN_UNIQ,
    JOB_CREATED,
    META,
    NO_JOB,
    OPTION_REQ,
    OPTION_RES,
    PRE_SLEEP,
    SUBMIT_JOB,
    SUBMIT_JOB_BG,
    SUBMIT_JOB_EPOCH,
    SUBMIT_JOB_HIGH_BG,
    SUBMIT_REDUCE_JOB,
    UNKNOWN_OPTION,
    WORK_COMPLETE,
    Broker,
    Peer,
    block,
    fake_server,
    req,
    res,
)
from libhelpers import eventually, running

from geartrain import Client, Priority, SyncClient, Worker, WorkerJob
from geartrain.protocol.meta import MetaError
from geartrain.worker import JobData, ThreadJob

SUBMITS = (SUBMIT_JOB, SUBMIT_JOB_BG, SUBMIT_JOB_HIGH_BG, SUBMIT_JOB_EPOCH, SUBMIT_REDUCE_JOB)


class Recorder:
    """A client's server: answers options (geartrain-meta as ``meta`` says) and every submit with JOB_CREATED;
    keeps every request in order, byte for byte."""

    def __init__(self, meta: bool) -> None:
        self.meta = meta
        self.requests: list[tuple[int, list[bytes]]] = []
        self.raw: list[bytes] = []

    async def serve(self, peer: Peer) -> None:
        self.raw = peer.raw
        while True:
            ptype, args = await peer.request()
            self.requests.append((ptype, args))
            if ptype == OPTION_REQ:
                peer.answer_option(args[0])
            elif ptype in SUBMITS:
                peer.send(res(JOB_CREATED, b"H:rec:%d" % len(self.requests)))

    def submits(self) -> list[bytes]:
        """The data argument of every submit so far."""
        return [args[-1] for ptype, args in self.requests if ptype in SUBMITS]

    def options(self) -> list[bytes]:
        return [args[0] for ptype, args in self.requests if ptype == OPTION_REQ]


async def test_client_asks_once_with_the_first_job_with_metadata_then_prefixes_every_submit() -> None:
    recorder = Recorder(meta=True)
    async with fake_server(recorder.serve, meta=True) as address, Client(address, exceptions=False) as client:
        await client.submit("f", b"before", background=True)
        await client.submit("f", b"x", background=True, meta={"tenant": "a", "id": "7"})
        await client.submit("f", b"plain", background=True)
        await client.submit("f", b"hi", priority=Priority.HIGH, background=True, meta={"k": "v"})
        await client.submit("f", b"at", when=2_000_000_000, meta={"k": "v"})
        await client.submit("f", b"r", reducer="sum", meta={"k": "v"})  # returns at JOB_CREATED
    assert recorder.options() == [META]
    # Only the submits after the option carry a block; one without metadata carries the empty block.
    assert recorder.submits() == [b"before", b"13:tenant=a\nid=7x", b"0:plain", b"3:k=vhi", b"3:k=vat", b"3:k=vr"]
    ptypes = [ptype for ptype, _ in recorder.requests]
    assert ptypes[:5] == [SUBMIT_JOB_BG, OPTION_REQ, SUBMIT_JOB_BG, SUBMIT_JOB_BG, SUBMIT_JOB_HIGH_BG]
    assert ptypes[5:] == [SUBMIT_JOB_EPOCH, SUBMIT_REDUCE_JOB]
    # The other arguments are untouched.
    assert recorder.requests[-2][1][:3] == [b"f", b"", b"2000000000"]
    assert recorder.requests[-1][1][:4] == [b"f", b"", b"sum", b""]


async def test_client_sends_jobs_as_before_where_the_option_is_refused(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="geartrain.client")
    recorder = Recorder(meta=False)
    async with fake_server(recorder.serve) as address, Client(address, exceptions=False) as client:
        for n in range(3):
            await client.submit("f", b"data%d" % n, background=True, meta={"n": str(n)})
        await client.submit("f", b"plain", background=True)
    assert recorder.options() == [META]  # asked once on the connection, refused once
    assert recorder.raw == [req(OPTION_REQ, META)] + [
        req(SUBMIT_JOB_BG, b"f", b"", data) for data in (b"data0", b"data1", b"data2", b"plain")
    ]
    refusals = [r for r in caplog.records if "geartrain-meta" in r.getMessage()]
    assert len(refusals) == 1 and refusals[0].levelno == logging.DEBUG


async def test_submits_wait_for_the_answer_to_the_option() -> None:
    """A submit the server read after OPTION_REQ but sent without a block would be misread: every submit of the
    connection waits for the answer, those without metadata too."""
    early: list[bytes] = []

    async def script(peer: Peer) -> None:
        assert await peer.request() == (OPTION_REQ, [META])
        with contextlib.suppress(TimeoutError):
            early.append(await asyncio.wait_for(peer.reader.read(1), 0.3))
        peer.send(res(OPTION_RES, META))
        for n in range(2):
            args = await peer.expect(SUBMIT_JOB_BG)
            early.append(args[2])
            peer.send(res(JOB_CREATED, b"H:%d" % n))

    async with fake_server(script) as address, Client(address, exceptions=False) as client:
        await client.connect()
        with_meta = client.submit("f", b"a", background=True, meta={"k": "v"})
        await asyncio.gather(with_meta, client.submit("f", b"b", background=True))
    assert early == [b"3:k=va", b"0:b"]


async def test_client_metadata_is_checked_before_anything_is_sent() -> None:
    recorder = Recorder(meta=True)
    async with fake_server(recorder.serve) as address, Client(address, exceptions=False) as client:
        with pytest.raises(MetaError):
            await client.submit("f", b"", meta={"Upper": "x"})
        with pytest.raises(MetaError):
            await client.submit("f", b"", meta={"k": "line\nbreak"})
        with pytest.raises(ValueError, match="attempt"):
            await client.do("f", b"", meta={"attempt": "2"})
        await client.submit("f", b"", background=True, meta={})  # empty: as without metadata
    assert recorder.requests == [(SUBMIT_JOB_BG, [b"f", b"", b""])]


async def test_a_connection_lost_while_asking_fails_over_with_the_metadata() -> None:
    dropped: list[tuple[int, list[bytes]]] = []

    async def drops(peer: Peer) -> None:
        dropped.append(await peer.request())
        raise ConnectionError("gone before answering the option")

    recorder = Recorder(meta=True)
    # A key that the client sends to the first server first (it picks a server by crc32 of the key).
    key = next(k for k in (f"key-{n}" for n in range(100)) if zlib.crc32(k.encode()) % 2 == 0)
    servers = fake_server(drops), fake_server(recorder.serve, meta=True)
    async with servers[0] as bad, servers[1] as good, Client([bad, good], exceptions=False) as client:
        job = await client.submit("f", b"x", background=True, meta={"k": "v"}, unique=key)
    assert dropped == [(OPTION_REQ, [META])]
    assert job.server == good and recorder.submits() == [b"3:k=vx"]


async def test_worker_job_sees_attempt_and_meta() -> None:
    seen: list[tuple[str, int, dict[str, str], bytes]] = []

    async def record(job: WorkerJob) -> bytes:
        seen.append((job.handle, job.attempt, job.meta, job.data))
        return b""

    def record_in_thread(job: ThreadJob) -> bytes:
        seen.append((job.handle, job.attempt, job.meta, job.data))
        return b""

    async def script(peer: Peer) -> None:
        await peer.expect(CAN_DO)
        await peer.expect(CAN_DO)
        await peer.expect(GRAB_JOB_ALL)
        peer.send(res(JOB_ASSIGN_UNIQ, b"H:1", b"f", b"u", block(b"attempt=3\ntenant=a\nid=7", b"pay\0load")))
        await peer.expect(WORK_COMPLETE)
        await peer.expect(GRAB_JOB_ALL)
        peer.send(res(JOB_ASSIGN_ALL, b"H:2", b"t", b"", b"", block(b"attempt=1", b"")))
        await peer.expect(WORK_COMPLETE)
        await peer.expect(GRAB_JOB_ALL)
        peer.send(res(JOB_ASSIGN, b"H:3", b"f", block(b"attempt=2", b"3:a=b")))  # a block-like payload stays
        await peer.expect(WORK_COMPLETE)
        await peer.expect(GRAB_JOB_ALL)
        peer.send(res(NO_JOB))

    async with fake_server(script, meta=True) as address:
        worker = Worker(address)
        worker.register("f", record)
        worker.register("t", record_in_thread)
        async with running(worker):
            await eventually(lambda: len(seen) == 3)
    assert seen == [
        ("H:1", 3, {"tenant": "a", "id": "7"}, b"pay\0load"),
        ("H:2", 1, {}, b""),
        ("H:3", 2, {}, b"3:a=b"),
    ]


async def test_a_malformed_block_is_taken_as_the_workload(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="geartrain.worker")
    seen: list[tuple[int, dict[str, str], bytes]] = []

    def record(job: ThreadJob) -> None:
        seen.append((job.attempt, job.meta, job.data))

    bad = [b"no block", b"99:short", b"5:BAD=1", b"attempt=1", b"9:attempt=xrest", b"3:k=vrest"]

    async def script(peer: Peer) -> None:
        await peer.expect(CAN_DO)
        await peer.expect(GRAB_JOB_ALL)
        for n, data in enumerate(bad):
            peer.send(res(JOB_ASSIGN_UNIQ, b"H:%d" % n, b"f", b"", data))
            await peer.expect(WORK_COMPLETE)
            await peer.expect(GRAB_JOB_ALL)
        peer.send(res(NO_JOB))

    async with fake_server(script, meta=True) as address:
        worker = Worker(address)
        worker.register("f", record, executor="inline")
        async with running(worker):
            await eventually(lambda: len(seen) == len(bad))
    # Not a block at all: the whole data, attempt 1. A block without a valid attempt: its fields, attempt 1.
    assert seen[:4] == [(1, {}, data) for data in bad[:4]]
    assert seen[4:] == [(1, {}, b"rest"), (1, {"k": "v"}, b"rest")]
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == len(bad)


async def worker_wire(meta_option: bool, refuse: bool) -> tuple[list[bytes], list[tuple[int, dict[str, str], bytes]]]:
    """The requests a worker sends through a cycle of two jobs, byte for byte, and what its jobs saw."""
    seen: list[tuple[int, dict[str, str], bytes]] = []
    finished = asyncio.Event()
    wire: list[bytes] = []

    async def record(job: WorkerJob) -> bytes:
        seen.append((job.attempt, job.meta, job.data))
        return job.data[::-1]

    async def script(peer: Peer) -> None:
        ptype, args = await peer.request()
        if ptype == OPTION_REQ:
            assert args == [META]
            peer.send(res(ERROR, *UNKNOWN_OPTION) if refuse else res(OPTION_RES, META))
            ptype, _ = await peer.request()
        assert ptype == CAN_DO
        assert (await peer.request())[0] == GRAB_JOB_ALL
        # Looks like a meta block, but on a connection without the option it is just the workload.
        peer.send(res(JOB_ASSIGN_UNIQ, b"H:1", b"f", b"", b"3:a=bxyz"))
        assert (await peer.request())[0] == WORK_COMPLETE
        assert (await peer.request())[0] == GRAB_JOB_ALL
        peer.send(res(NO_JOB))
        assert (await peer.request())[0] == PRE_SLEEP
        wire.extend(peer.raw)
        finished.set()

    async with fake_server(script) as address:
        worker = Worker(address, meta=meta_option)
        worker.register("f", record)
        async with running(worker):
            await asyncio.wait_for(finished.wait(), 10)
    return wire, seen


async def test_a_refused_option_changes_nothing_on_the_wire() -> None:
    plain_wire, plain_seen = await worker_wire(meta_option=False, refuse=True)
    refused_wire, refused_seen = await worker_wire(meta_option=True, refuse=True)
    assert refused_wire[0] == req(OPTION_REQ, META)
    assert refused_wire[1:] == plain_wire
    assert plain_wire == [
        req(CAN_DO, b"f"),
        req(GRAB_JOB_ALL),
        req(WORK_COMPLETE, b"H:1", b"zyxb=a:3"),
        req(GRAB_JOB_ALL),
        req(PRE_SLEEP),
    ]
    assert refused_seen == plain_seen == [(1, {}, b"3:a=bxyz")]


async def test_end_to_end_through_a_broker_async_and_sync() -> None:
    """The client's metadata reaches the worker's job, with the server's attempt, also through the blocking
    client (called from a thread, since the broker runs on this loop)."""
    seen: list[JobData] = []

    async def record(job: WorkerJob) -> bytes:
        seen.append(job)
        return job.meta.get("tenant", "-")

    broker = Broker(meta=True)
    async with broker.running() as address:
        worker = Worker(address)
        worker.register("f", record)
        async with running(worker), Client(address) as client:
            assert await client.do("f", b"one", meta={"tenant": "acme"}) == b"acme"
            broker.attempt = 2
            assert await client.do("f", b"two") == b"-"
            with SyncClient(address) as sync:
                assert await asyncio.to_thread(sync.do, "f", b"three", meta={"tenant": "sync"}) == b"sync"
                job = await asyncio.to_thread(sync.submit, "f", b"four", background=True, meta={"x": "1"})
                assert job.handle is not None
            await eventually(lambda: len(seen) == 4)
    assert [(job.attempt, job.meta, job.data) for job in seen] == [
        (1, {"tenant": "acme"}, b"one"),
        (2, {}, b"two"),
        (2, {"tenant": "sync"}, b"three"),
        (2, {"x": "1"}, b"four"),
    ]
    assert broker.options.count(META) == 3  # the worker, the client and the sync client: once each


def test_job_data_keeps_attempt_and_meta_through_pickling() -> None:
    job = pickle.loads(pickle.dumps(JobData("H:1", "f", "u", b"d", None, 4, {"k": "v"})))
    assert (job.handle, job.attempt, job.meta, job.data) == ("H:1", 4, {"k": "v"}, b"d")
    assert JobData("H:2", "f", "", b"").attempt == 1 and JobData("H:2", "f", "", b"").meta == {}


def test_without_opentelemetry_nothing_of_it_is_imported() -> None:
    """Blocks the package as if it were not installed: the library imports and runs with tracing off."""
    code = (
        "import sys; sys.modules['opentelemetry'] = None\n"
        "from geartrain import Client, Worker, tracing\n"
        "assert not tracing.AVAILABLE\n"
        "import asyncio\n"
        "async def main():\n"
        "    assert Client('127.0.0.1:1')._tracer is None and Worker('127.0.0.1:1')._tracer is None\n"
        "asyncio.run(main())\n"
        "assert not [m for m in sys.modules if m.startswith('opentelemetry.')]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
