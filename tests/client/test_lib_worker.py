"""Our worker (with our client) against each server: concurrency, thread and process pools, functions that raise,
CAN_DO_TIMEOUT, graceful and abrupt stops; and the client's side of load, timeouts and cancellation."""

from __future__ import annotations

import asyncio
import os
import threading

import pytest
from libhelpers import eventually, running

from geartrain import AdminClient, Client, GearmanTimeout, JobFailed, ThreadJob, Worker, WorkerJob
from geartrain.worker import JobData
from servers import GearmanServer, admin


def square_in_a_process(job: JobData) -> bytes:
    """Module level, so that a spawned process pool can import it."""
    return f"{int(job.data) ** 2} from {os.getpid()}".encode()


async def test_many_jobs_in_flight_on_one_connection(gearman_server: GearmanServer) -> None:
    async def echo(job: WorkerJob) -> bytes:
        return job.data

    worker = Worker(gearman_server.address, concurrency=50)
    worker.register("echo", echo)
    async with running(worker), Client(gearman_server.address) as client:
        payloads = [f"job-{i}".encode() for i in range(1000)]
        results = await asyncio.gather(*(client.do("echo", payload) for payload in payloads))
        assert results == payloads
        # All of that went through one connection.
        clients = [line for line in admin(gearman_server, "workers").splitlines() if line.endswith(" :")]
        assert len(clients) == 2  # our client and the admin connection asking


async def test_async_concurrency_is_bounded(gearman_server: GearmanServer) -> None:
    running_now = 0
    peak = 0
    all_in = asyncio.Event()

    async def gather_up(job: WorkerJob) -> bytes:
        nonlocal running_now, peak
        running_now += 1
        peak = max(peak, running_now)
        if running_now == 4:
            all_in.set()
        await all_in.wait()
        running_now -= 1
        return job.data

    worker = Worker(gearman_server.address, concurrency=4)
    worker.register("gather_up", gather_up)
    async with running(worker), Client(gearman_server.address) as client:
        results = await asyncio.gather(*(client.do("gather_up", str(i)) for i in range(12)))
    assert results == [str(i).encode() for i in range(12)]
    assert peak == 4


async def test_thread_pool_runs_blocking_functions(gearman_server: GearmanServer) -> None:
    barrier = threading.Barrier(3, timeout=10)
    threads: set[str] = set()

    def blocking(job: ThreadJob) -> str:
        threads.add(threading.current_thread().name)
        job.send_data(b"from a thread")
        job.send_status(1, 1)
        barrier.wait()  # only returns once three jobs run at the same time
        return job.data.decode().upper()

    worker = Worker(gearman_server.address, concurrency=3)
    worker.register("blocking", blocking)
    async with running(worker), Client(gearman_server.address) as client:
        jobs = [await client.submit("blocking", word) for word in ("a", "b", "c")]
        assert [await job for job in jobs] == [b"A", b"B", b"C"]
        assert all(job.events[0].data == b"from a thread" for job in jobs)  # type: ignore[union-attr]
    assert len(threads) == 3 and threading.current_thread().name not in threads


async def test_process_pool(gearman_server: GearmanServer) -> None:
    worker = Worker(gearman_server.address, concurrency=2, processes=2)
    worker.register("square", square_in_a_process, executor="process")
    async with running(worker), Client(gearman_server.address) as client:
        results = await asyncio.gather(*(client.do("square", str(n), timeout=30) for n in range(4)))
    values = [result.split()[0] for result in results]
    assert values == [b"0", b"1", b"4", b"9"]
    assert all(int(result.split()[-1]) != os.getpid() for result in results)


async def test_inline_functions_and_return_types(gearman_server: GearmanServer) -> None:
    def inline(job: ThreadJob) -> object:
        job.send_data(b"inline data")
        return {b"bytes": b"b", b"str": "s", b"none": None, b"bad": 42}[job.data]

    worker = Worker(gearman_server.address, exceptions=True)
    worker.register("inline", inline, executor="inline")
    async with running(worker), Client(gearman_server.address) as client:
        assert await client.do("inline", b"bytes") == b"b"
        assert await client.do("inline", b"str") == b"s"
        assert await client.do("inline", b"none") == b""
        with pytest.raises(Exception, match="must return bytes, str or None"):
            await client.do("inline", b"bad")


async def test_a_raising_function_does_not_stop_the_worker(gearman_server: GearmanServer) -> None:
    calls = 0

    def sometimes(job: ThreadJob) -> bytes:
        nonlocal calls
        calls += 1
        if job.data == b"raise":
            raise RuntimeError("worker function blew up")
        return b"fine"

    worker = Worker(gearman_server.address)  # exceptions off: the client sees WORK_FAIL
    worker.register("sometimes", sometimes)
    async with running(worker), Client(gearman_server.address) as client:
        for _ in range(3):
            with pytest.raises(JobFailed):
                await client.do("sometimes", b"raise")
            assert await client.do("sometimes", b"ok") == b"fine"
    assert calls == 6 and worker.jobs_done == 6


async def test_graceful_stop_finishes_the_running_job(gearman_server: GearmanServer) -> None:
    started, release = asyncio.Event(), asyncio.Event()

    async def slow(job: WorkerJob) -> bytes:
        started.set()
        await release.wait()
        return b"finished"

    worker = Worker(gearman_server.address)
    worker.register("slow", slow)
    run = asyncio.create_task(worker.run())
    async with Client(gearman_server.address) as client:
        job = await client.submit("slow")
        await asyncio.wait_for(started.wait(), 10)
        worker.stop(graceful=True)
        # A second job must not be taken any more.
        second = await client.submit("slow", b"second")
        assert not run.done()
        release.set()
        assert await job == b"finished"
        await asyncio.wait_for(run, 10)
        assert worker.jobs_done == 1
        status = await client.get_status(second)
        assert (status.known, status.running) == (True, False)


async def test_abrupt_stop_leaves_the_job_to_another_worker(gearman_server: GearmanServer) -> None:
    started = asyncio.Event()

    async def hangs(job: WorkerJob) -> bytes:
        started.set()
        await asyncio.Event().wait()
        return b"never"

    async def works(job: WorkerJob) -> bytes:
        return b"done by the second worker"

    first = Worker(gearman_server.address)
    first.register("handoff", hangs)
    run = asyncio.create_task(first.run())
    async with Client(gearman_server.address) as client:
        job = await client.submit("handoff")
        await asyncio.wait_for(started.wait(), 10)
        first.stop(graceful=False)
        await asyncio.wait_for(run, 10)
        second = Worker(gearman_server.address)
        second.register("handoff", works)
        async with running(second):
            assert await job.result(timeout=10) == b"done by the second worker"


async def test_can_do_timeout_makes_the_server_requeue(gearman_server: GearmanServer) -> None:
    """The server takes the job back after the 1 s CAN_DO_TIMEOUT; the late result is refused, the retry counts.

    Concurrency 1 on purpose: gearmand 1.1.20 cancels the timer when the worker sends anything else (a GRAB or a
    PRE_SLEEP), so the timeout only works for a worker that stays silent while its job runs.
    """
    handles: list[str] = []

    async def overruns(job: WorkerJob) -> bytes:
        handles.append(job.handle)
        if len(handles) == 1:
            async with AdminClient(gearman_server.address) as admin_client:

                async def retried() -> bool:
                    return any(row.retries == 1 for row in await admin_client.show_jobs())

                await eventually(retried, timeout=20, message="the server to requeue the job")
            return b"late"
        return b"second try"

    worker = Worker(gearman_server.address, concurrency=1)
    worker.register("overruns", overruns, timeout=1.0)
    async with running(worker), Client(gearman_server.address) as client:
        assert await client.do("overruns", timeout=30) == b"second try"
    assert handles[0] == handles[1]


async def test_timeouts(gearman_server: GearmanServer) -> None:
    release = asyncio.Event()

    async def slow(job: WorkerJob) -> bytes:
        await release.wait()
        return b"eventually"

    worker = Worker(gearman_server.address)
    worker.register("slow", slow)
    async with Client(gearman_server.address) as client:
        with pytest.raises(GearmanTimeout):
            await client.do("nobody-serves-this", b"", timeout=0.2)
        async with running(worker):
            job = await client.submit("slow")
            with pytest.raises(TimeoutError):  # GearmanTimeout is a TimeoutError too
                await job.result(timeout=0.1)
            assert not job.done()  # the job goes on after a timed-out wait
            release.set()
            assert await job.result(timeout=10) == b"eventually"
        assert await client.echo(b"in step") == b"in step"


async def test_cancellation(gearman_server: GearmanServer) -> None:
    started, release = asyncio.Event(), asyncio.Event()

    async def slow(job: WorkerJob) -> bytes:
        started.set()
        await release.wait()
        return b"ignored"

    worker = Worker(gearman_server.address)
    worker.register("slow", slow)
    async with running(worker), Client(gearman_server.address) as client:
        # Cancelling the task waiting on a job: the client forgets the job, the connection stays usable.
        task = asyncio.create_task(client.do("slow"))
        await asyncio.wait_for(started.wait(), 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        release.set()
        assert await client.echo(b"still fine") == b"still fine"

        # Cancelling a queued job on the server (admin `cancel job`): its client gets WORK_FAIL.
        queued = await client.submit("no-worker-for-this")
        assert await client.cancel(queued) is True
        with pytest.raises(JobFailed):
            await queued.result(timeout=10)
        assert await client.cancel(queued) in (True, False)  # gearmand: OK for a cancelled job; geartrain: gone
    # Cancelled after the submit went out but before its JOB_CREATED: that reply must still be consumed in order.
    async with Client(gearman_server.address) as client:
        await client.echo(b"connected, and the exceptions option answered")
        connection = client._servers[0].connection
        assert connection is not None
        submit = asyncio.create_task(client.submit("nobody", b"x", background=True))
        # One loop turn runs the task up to its wait for JOB_CREATED (the write itself comes a turn later).
        await asyncio.sleep(0)
        assert connection.in_flight == 1
        submit.cancel()
        with pytest.raises(asyncio.CancelledError):
            await submit
        assert await client.echo(b"next reply") == b"next reply"
