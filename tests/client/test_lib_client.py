"""Our asyncio client (with our worker) against each server: submit kinds, priorities, unique keys, epoch and reduce
jobs, the event stream, failures and exceptions, status queries, echo and options."""

from __future__ import annotations

import asyncio
import time

import pytest
from libhelpers import eventually, running

from geartrain import (
    AdminClient,
    Client,
    JobException,
    JobFailed,
    Priority,
    WorkComplete,
    WorkData,
    WorkerJob,
    WorkException,
    WorkFail,
    WorkStatus,
    WorkWarning,
)
from geartrain.errors import ArgumentTooLarge, QueueFull, UnknownOption
from geartrain.worker import Worker
from servers import GearmanServer


async def reverse(job: WorkerJob) -> bytes:
    return job.data[::-1]


async def test_every_submit_kind_and_priority(gearman_server: GearmanServer) -> None:
    seen: list[bytes] = []

    async def record(job: WorkerJob) -> bytes:
        seen.append(job.data)
        return job.data.upper()

    async with Client(gearman_server.address) as client:
        jobs = {}
        # Queued before any worker, lowest priority first: the worker must take them high -> normal -> low.
        for priority in (Priority.LOW, Priority.NORMAL, Priority.HIGH):
            for background in (True, False):
                name = f"{priority.name[0]}{'b' if background else 'f'}".lower().encode()
                jobs[name] = await client.submit("prio", name, priority=priority, background=background)
        assert len({job.handle for job in jobs.values()}) == 6
        assert all(job.server == gearman_server.address for job in jobs.values())
        assert [job.done() for job in jobs.values()] == [True, False] * 3  # background jobs end when created

        worker = Worker(gearman_server.address)
        worker.register("prio", record)
        async with running(worker):
            results = {name: await job.result() for name, job in jobs.items() if not job.background}
    assert results == {b"lf": b"LF", b"nf": b"NF", b"hf": b"HF"}
    assert seen == [b"hb", b"hf", b"nb", b"nf", b"lb", b"lf"]
    assert [await jobs[name] for name in (b"hb", b"nb", b"lb")] == [b"", b"", b""]  # a background job's result


async def test_do_at_each_priority(gearman_server: GearmanServer) -> None:
    worker = Worker(gearman_server.address)
    worker.register("reverse", reverse)
    async with running(worker), Client(gearman_server.address) as client:
        for priority in Priority:
            assert (
                await client.do("reverse", f"at {priority.name}", priority=priority)
                == f"at {priority.name}"[::-1].encode()
            )


async def test_unique_key_coalesces_submits(gearman_server: GearmanServer) -> None:
    assigned: list[tuple[str, bytes]] = []

    async def chatty(job: WorkerJob) -> bytes:
        assigned.append((job.unique, job.data))
        await job.send_data(b"partial")
        return b"result:" + job.data

    async with Client(gearman_server.address) as first, Client(gearman_server.address) as second:
        a = await first.submit("coalesce", b"first", unique="same-key")
        b = await second.submit("coalesce", b"second", unique="same-key")
        c = await first.submit("coalesce", b"third", unique="same-key")  # twice on one connection
        background = await second.submit("coalesce", b"bg", unique="same-key", background=True)
        other = await second.submit("coalesce", b"other", unique="other-key")
        assert a.handle == b.handle == c.handle == background.handle != other.handle
        status = await second.get_status_unique("same-key")
        assert (status.known, status.running, status.clients) == (True, False, 3)  # three foreground submits

        worker = Worker(gearman_server.address)
        worker.register("coalesce", chatty)
        async with running(worker):
            results = [await job for job in (a, b, c, other)]
    assert results == [b"result:first"] * 3 + [b"result:other"]
    # One job ran for the three submits; the later workloads were dropped.
    assert sorted(assigned) == [("other-key", b"other"), ("same-key", b"first")]
    for job in (a, b, c):
        assert job.events == [WorkData(b"partial"), WorkComplete(b"result:first")]


async def test_epoch_jobs(gearman_server: GearmanServer) -> None:
    worker = Worker(gearman_server.address)
    done = asyncio.Event()

    async def due(job: WorkerJob) -> bytes:
        done.set()
        return b""

    worker.register("due", due)
    async with Client(gearman_server.address) as client:
        later = await client.submit("later", b"x", when=time.time() + 3600)
        assert later.background and later.when is not None and later.done()
        status = await client.get_status(later)
        assert (status.known, status.running) == (True, False)
        async with running(worker):
            past = await client.submit("due", b"now", when=time.time() - 5)
            assert past.handle
            await asyncio.wait_for(done.wait(), 10)
        with pytest.raises(ValueError):
            await client.submit("due", b"x", when=time.time(), priority=Priority.HIGH)


async def test_reduce_job_reaches_the_worker_with_its_reducer(gearman_server: GearmanServer) -> None:
    reducers: list[str | None] = []

    async def mapper(job: WorkerJob) -> str:
        reducers.append(job.reducer)
        return f"mapped {job.data.decode()} for {job.reducer}"

    worker = Worker(gearman_server.address)
    worker.register("mapper", mapper)
    async with running(worker), Client(gearman_server.address) as client:
        assert await client.do("mapper", b"words", reducer="count") == b"mapped words for count"
        background = await client.submit("mapper", b"bg", reducer="sum", background=True)
        assert background.handle
        await eventually(lambda: len(reducers) == 2, message="the background reduce job")
        # A plain job, grabbed the same way (GRAB_JOB_ALL), has no reducer.
        assert await client.do("mapper", b"plain") == b"mapped plain for None"
    assert reducers == ["count", "sum", None]


async def test_event_stream_iterator_and_callbacks(gearman_server: GearmanServer) -> None:
    async def chatty(job: WorkerJob) -> bytes:
        await job.send_data(b"data-1")
        await job.send_status(1, 3)
        await job.send_warning("warning-1")
        await job.send_status(2, 3)
        await job.send_data(b"data-2")
        return b"done:" + job.data

    expected = [
        WorkData(b"data-1"),
        WorkStatus(1, 3),
        WorkWarning(b"warning-1"),
        WorkStatus(2, 3),
        WorkData(b"data-2"),
        WorkComplete(b"done:x"),
    ]
    worker = Worker(gearman_server.address)
    worker.register("chatty", chatty)
    called: list[object] = []
    async with running(worker), Client(gearman_server.address) as client:
        job = await client.submit("chatty", b"x", on_event=lambda job, event: called.append(event))
        streamed = [event async for event in job]
        assert streamed == expected
        assert called == expected
        assert await job == b"done:x"
        assert job.status == WorkStatus(2, 3) and job.status.fraction == pytest.approx(2 / 3)
        # Iterating again replays the events.
        assert [event async for event in job] == expected
        collected: list[object] = []
        assert await client.do("chatty", b"y", on_event=lambda job, event: collected.append(event)) == b"done:y"
        assert collected[-1] == WorkComplete(b"done:y")


async def test_failure_and_exceptions(gearman_server: GearmanServer) -> None:
    async def fails(job: WorkerJob) -> bytes:
        raise JobFailed()

    async def raises(job: WorkerJob) -> bytes:
        raise ValueError("boom")

    worker = Worker(gearman_server.address, exceptions=True)
    worker.register("fails", fails)
    worker.register("raises", raises)
    async with running(worker):
        async with Client(gearman_server.address) as client:
            job = await client.submit("fails")
            with pytest.raises(JobFailed) as failed:
                await job
            assert failed.value.handle == job.handle
            assert job.events == [WorkFail()]

            job = await client.submit("raises")
            with pytest.raises(JobException) as raised:
                await job
            assert raised.value.data == b"ValueError: boom"
            assert [event async for event in job] == [WorkException(b"ValueError: boom")]
        # Without the exceptions option gearmand 1.1.20 sends WORK_FAIL "handle\0"; geartrain a plain WORK_FAIL.
        async with Client(gearman_server.address, exceptions=False) as plain:
            job = await plain.submit("raises")
            with pytest.raises(JobFailed):
                await job
            assert job.events == [WorkFail()]
            assert await plain.echo(b"still in step") == b"still in step"
        assert worker.jobs_done == 3


async def test_status_queries(gearman_server: GearmanServer) -> None:
    release = asyncio.Event()

    async def slow(job: WorkerJob) -> bytes:
        await job.send_status(3, 10)
        await release.wait()
        return b"ok"

    worker = Worker(gearman_server.address)
    worker.register("slow", slow)
    async with running(worker), Client(gearman_server.address) as client:
        job = await client.submit("slow", b"", unique="status-key")
        await eventually(lambda: job.status is not None, message="WORK_STATUS")
        status = await client.get_status(job)
        assert (status.handle, status.known, status.running, status.numerator, status.denominator) == (
            job.handle, True, True, 3, 10,
        )  # fmt: skip
        assert await client.get_status(job.handle or "") == status  # by handle: every server is asked
        unique = await client.get_status_unique("status-key")
        assert (unique.unique, unique.known, unique.running, unique.numerator, unique.denominator, unique.clients) == (
            "status-key", True, True, 3, 10, 1,
        )  # fmt: skip
        release.set()
        assert await job == b"ok"
        after = await client.get_status(job)
        assert (after.known, after.running) == (False, False)
        unknown = await client.get_status_unique("no-such-key")
        assert (unknown.known, unknown.clients) == (False, 0)


async def test_echo_and_options(gearman_server: GearmanServer) -> None:
    async with Client(gearman_server.address) as client:
        assert await client.echo(b"hello\0world") == b"hello\0world"
        big = bytes(range(256)) * 4096  # 1 MiB
        assert await client.echo(big) == big
        assert await client.echo("text") == b"text"
        await client.set_option("exceptions")
        with pytest.raises(UnknownOption):
            await client.set_option("no-such-option")
        assert await client.echo(b"after the error") == b"after the error"


async def test_server_errors_are_raised(gearman_server: GearmanServer) -> None:
    async with Client(gearman_server.address) as client, AdminClient(gearman_server.address) as admin:
        with pytest.raises(ArgumentTooLarge):
            await client.submit("f", b"", unique="u" * 65, background=True)
        await admin.create_function("limited")
        await admin.maxqueue("limited", 1)
        await client.submit("limited", b"1", background=True)
        with pytest.raises(QueueFull):
            await client.submit("limited", b"2", background=True)
        with pytest.raises(QueueFull):
            await client.do("limited", b"3")
        # The connection is still in step after the errors.
        assert await client.echo(b"ok") == b"ok"
