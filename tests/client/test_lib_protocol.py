"""Client and worker against a scripted fake server: replies real servers give only in odd cases (gearmand's
NUL-suffixed WORK_FAIL, duplicated packets for coalesced submits, ERROR in a pipeline, replies out of step, a server
dropping the connection before JOB_CREATED), and the exact packets and writes of the worker's cycle.

The fake server (fakeserver.py) frames packets with its own few lines of struct code, not with geartrain's codec.
"""

from __future__ import annotations

import asyncio

import pytest
from fakeserver import (
    CAN_DO,
    CAN_DO_TIMEOUT,
    ECHO_REQ,
    ECHO_RES,
    ERROR,
    GRAB_JOB_ALL,
    HEADER,
    JOB_ASSIGN_ALL,
    JOB_ASSIGN_UNIQ,
    JOB_CREATED,
    META,
    NO_JOB,
    NOOP,
    OPTION_REQ,
    PRE_SLEEP,
    SET_CLIENT_ID,
    STATUS_RES,
    SUBMIT_JOB,
    UNKNOWN_OPTION,
    WORK_COMPLETE,
    WORK_DATA,
    WORK_FAIL,
    WORK_STATUS,
    Peer,
    fake_server,
    res,
)

from geartrain import (
    Client,
    ConnectionLost,
    GearmanError,
    JobFailed,
    WorkComplete,
    WorkData,
    Worker,
    WorkerJob,
    WorkFail,
    WorkStatus,
)
from geartrain.errors import QueueFull


async def test_work_fail_with_a_trailing_nul_is_recognised() -> None:
    async def script(peer: Peer) -> None:
        await peer.expect(SUBMIT_JOB)
        # gearmand 1.1.20: a worker's WORK_EXCEPTION, for a client without the exceptions option.
        peer.send(res(JOB_CREATED, b"H:fake:1"), res(WORK_FAIL, b"H:fake:1\0"))

    async with fake_server(script) as address, Client(address, exceptions=False) as client:
        job = await client.submit("f", b"x")
        with pytest.raises(JobFailed):
            await job.result(timeout=5)
        assert job.events == [WorkFail()]


async def test_coalesced_submits_on_one_connection_each_see_each_packet_once() -> None:
    async def script(peer: Peer) -> None:
        for _ in range(2):
            await peer.expect(SUBMIT_JOB)
            peer.send(res(JOB_CREATED, b"H:fake:7"))
        # Servers send every packet once per attached submit, back to back.
        data, status = res(WORK_DATA, b"H:fake:7", b"chunk"), res(WORK_STATUS, b"H:fake:7", b"x1", b"")
        done = res(WORK_COMPLETE, b"H:fake:7", b"result")
        peer.send(data, data, status, status, done, done)

    async with fake_server(script) as address, Client(address) as client:
        first = await client.submit("f", b"1", unique="k")
        second = await client.submit("f", b"2", unique="k")
        assert [await first, await second] == [b"result", b"result"]
        # Status fields that are not numbers read as gearmand reads them (atoi).
        expected = [WorkData(b"chunk"), WorkStatus(0, 0), WorkComplete(b"result")]
        assert first.events == expected and second.events == expected


async def test_error_answers_the_oldest_request_in_a_pipeline() -> None:
    async def script(peer: Peer) -> None:
        first = await peer.expect(ECHO_REQ)
        await peer.expect(SUBMIT_JOB)
        third = await peer.expect(ECHO_REQ)
        # All three answered at once, in request order; the ERROR belongs to the submit.
        peer.send(res(ECHO_RES, first[0]), res(ERROR, b"QUEUE_ERROR", b"Job queue is full"), res(ECHO_RES, third[0]))

    async with fake_server(script) as address, Client(address) as client:
        await client.connect()
        results = await asyncio.gather(
            client.echo(b"one"), client.submit("f", b""), client.echo(b"three"), return_exceptions=True
        )
    assert results[0] == b"one" and results[2] == b"three"
    assert isinstance(results[1], QueueFull) and results[1].text == "Job queue is full"


async def test_a_reply_out_of_step_closes_the_connection() -> None:
    async def script(peer: Peer) -> None:
        await peer.expect(ECHO_REQ)
        peer.send(res(STATUS_RES, b"H:x:1", b"0", b"0", b"0", b"0"))

    async with fake_server(script) as address, Client(address) as client:
        with pytest.raises(GearmanError):
            await client.echo(b"ping", timeout=5)


async def test_a_submit_the_server_dropped_goes_to_the_next_server() -> None:
    async def drops(peer: Peer) -> None:
        await peer.expect(SUBMIT_JOB)
        raise ConnectionError("hang up without JOB_CREATED")

    async def serves(peer: Peer) -> None:
        args = await peer.expect(SUBMIT_JOB)
        peer.send(res(JOB_CREATED, b"H:good:1"), res(WORK_COMPLETE, b"H:good:1", args[2][::-1]))

    async with fake_server(drops) as bad, fake_server(serves) as good, Client([bad, good]) as client:
        job = await client.submit("f", b"abc")
        # Wherever the key pointed, the job ended on the server that answered.
        assert job.server == good and await job == b"cba"


async def test_a_created_job_fails_when_its_server_goes() -> None:
    async def script(peer: Peer) -> None:
        await peer.expect(SUBMIT_JOB)
        peer.send(res(JOB_CREATED, b"H:gone:1"))
        await peer.writer.drain()
        await peer.expect(ECHO_REQ)  # the client's sign that it has the handle
        raise ConnectionError("crash")

    async with fake_server(script) as address, Client(address) as client:
        job = await client.submit("f", b"")
        with pytest.raises(GearmanError):
            await client.echo(b"now")
        with pytest.raises(ConnectionLost):
            await job.result(timeout=5)


async def test_worker_cycle_packet_by_packet() -> None:
    seen: list[tuple[str, str, str | None, bytes]] = []
    checked = asyncio.Event()

    async def record(job: WorkerJob) -> bytes:
        seen.append((job.function, job.unique, job.reducer, job.data))
        return job.data.upper()

    async def script(peer: Peer) -> None:
        # Registration: the geartrain-meta option (refused here, as gearmand does), client id, then the functions
        # newest-registered first (the server serves the last CAN_DO first, so the first registered is
        # preferred), the timeout in milliseconds.
        assert await peer.request() == (OPTION_REQ, [META])
        peer.send(res(ERROR, *UNKNOWN_OPTION))
        assert await peer.request() == (SET_CLIENT_ID, [b"fake-worker"])
        assert await peer.request() == (CAN_DO_TIMEOUT, [b"second", b"1500"])
        assert await peer.request() == (CAN_DO, [b"first"])
        assert await peer.request() == (GRAB_JOB_ALL, [b""])
        peer.send(res(NO_JOB))
        assert await peer.request() == (PRE_SLEEP, [b""])
        peer.send(res(NOOP))
        assert await peer.request() == (GRAB_JOB_ALL, [b""])
        peer.send(res(JOB_ASSIGN_UNIQ, b"H:1", b"first", b"u1", b"abc"))
        # The result and the next grab arrive in one write.
        chunk = await peer.reader.read(65536)
        complete = res(WORK_COMPLETE, b"H:1", b"ABC").replace(b"\0RES", b"\0REQ")
        grab = HEADER.pack(b"\0REQ", GRAB_JOB_ALL, 0)
        assert chunk == complete + grab, chunk
        peer.send(res(JOB_ASSIGN_ALL, b"H:2", b"second", b"u2", b"sum", b"def"))
        assert await peer.request() == (WORK_COMPLETE, [b"H:2", b"DEF"])
        assert await peer.request() == (GRAB_JOB_ALL, [b""])
        peer.send(res(NO_JOB))
        assert await peer.request() == (PRE_SLEEP, [b""])
        checked.set()

    async with fake_server(script) as address:
        worker = Worker(address, client_id="fake-worker")
        worker.register("first", record)
        worker.register("second", record, timeout=1.5)
        run = asyncio.create_task(worker.run())
        try:
            await asyncio.wait_for(checked.wait(), 10)
        finally:
            worker.stop()
            await asyncio.wait_for(run, 10)
    assert seen == [("first", "u1", None, b"abc"), ("second", "u2", "sum", b"def")]


async def test_worker_takes_several_jobs_per_round_trip_from_a_backlog() -> None:
    grabs_per_read: list[int] = []
    done = asyncio.Event()

    async def instant(job: WorkerJob) -> bytes:
        return b""

    async def script(peer: Peer) -> None:
        await peer.expect(CAN_DO)
        handle = 0
        while handle < 200:
            chunk = await peer.reader.read(65536)
            grabs = chunk.count(HEADER.pack(b"\0REQ", GRAB_JOB_ALL, 0))
            grabs_per_read.append(grabs)
            for _ in range(grabs):
                handle += 1
                peer.send(res(JOB_ASSIGN_UNIQ, b"H:%d" % handle, b"f", b"", b""))
        done.set()

    async with fake_server(script) as address:
        worker = Worker(address, concurrency=64)
        worker.register("f", instant)
        run = asyncio.create_task(worker.run())
        try:
            await asyncio.wait_for(done.wait(), 10)
        finally:
            worker.stop(graceful=False)
            await asyncio.wait_for(run, 10)
    assert grabs_per_read[0] == 1  # one GRAB after connecting
    assert max(grabs_per_read) > 4  # then more and more while jobs keep coming
