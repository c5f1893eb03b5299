"""Several servers: jobs spread over them, a server SIGKILLed mid-run, and its return.

The client must fall over to the surviving server (only jobs the dead server had already acknowledged may fail,
with ConnectionLost), workers connected to both must keep serving the survivor, and both must reconnect (with
backoff) once the dead server is back on its port.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from libhelpers import eventually, kill, running

from geartrain import Client, ConnectionLost, NoServersAvailable, Worker, WorkerJob
from servers import GearmanServer


async def echo(job: WorkerJob) -> bytes:
    return job.data


@pytest.mark.interop  # the C gearmand is one of the pair in two of the cases
@pytest.mark.parametrize(
    ("doomed", "survivor"), [("geartrain", "geartrain"), ("geartrain", "gearmand"), ("gearmand", "geartrain")]
)
async def test_kill_one_server_mid_run(spare_servers: Callable[..., GearmanServer], doomed: str, survivor: str) -> None:
    a, b = spare_servers(doomed), spare_servers(survivor)
    servers = [a.address, b.address]
    worker = Worker(servers, concurrency=8, backoff_max=0.5)
    worker.register("echo", echo)
    async with running(worker), Client(servers, backoff_max=0.5) as client:
        # Without a unique key, jobs are dealt out round robin.
        jobs = [await client.submit("echo", str(i)) for i in range(10)]
        assert [job.server for job in jobs] == servers * 5
        assert [await job for job in jobs] == [str(i).encode() for i in range(10)]

        outcomes: list[str] = []
        stop = asyncio.Event()

        async def load(lane: int) -> None:
            count = 0
            while not stop.is_set():
                payload = f"{lane}-{count}".encode()
                count += 1
                try:
                    assert await client.do("echo", payload, timeout=20) == payload
                    outcomes.append("ok")
                except ConnectionLost:
                    outcomes.append("lost")  # acknowledged by the server that died: it cannot be finished

        lanes = [asyncio.create_task(load(lane)) for lane in range(4)]
        await eventually(lambda: len(outcomes) >= 100, message="load on both servers")
        kill(a)
        killed_at = len(outcomes)
        await eventually(lambda: outcomes[killed_at:].count("ok") >= 200, timeout=20, message="load on the survivor")
        stop.set()
        await asyncio.gather(*lanes)
        print(f"{len(outcomes)} jobs, {outcomes.count('lost')} lost with the server")
        assert outcomes.count("lost") <= 4  # at most the jobs in flight on the dead server when it died
        assert "lost" not in outcomes[:killed_at]
        assert worker.connected == [b.address]

        # New jobs all go to the survivor, whatever their key hashes to.
        after = [await client.submit("echo", b"x", unique=f"key-{i}") for i in range(6)]
        assert {job.server for job in after} == {b.address}
        await asyncio.gather(*after)

        # The dead server comes back on its port: the worker reconnects, the client uses it again.
        spare_servers(doomed, port=a.port)
        await eventually(lambda: a.address in worker.connected, timeout=20, message="the worker to reconnect")

        await eventually(lambda: _any_on(client, a.address), timeout=20, message="the client to use it again")


async def _any_on(client: Client, address: str) -> bool:
    jobs = [await client.submit("echo", b"rr") for _ in range(2)]
    await asyncio.gather(*jobs)
    return any(job.server == address for job in jobs)


async def test_unique_keys_stick_to_one_server(spare_servers: Callable[..., GearmanServer]) -> None:
    a, b = spare_servers("geartrain"), spare_servers("geartrain")
    async with Client([a.address, b.address]) as client:
        for key in ("alpha", "beta", "gamma", "delta"):
            jobs = [await client.submit("nobody", b"", unique=key) for _ in range(3)]
            assert len({job.server for job in jobs}) == 1
            assert len({job.handle for job in jobs}) == 1  # they met on that server and coalesced
            status = await client.get_status_unique(key)
            assert status.known and status.clients == 3


async def test_no_server_reachable(spare_servers: Callable[..., GearmanServer]) -> None:
    a = spare_servers("geartrain")
    kill(a)
    async with Client([a.address], connect_timeout=2) as client:
        with pytest.raises(NoServersAvailable):
            await client.do("anything", b"")
        with pytest.raises(NoServersAvailable):  # now backing off: refused at once, without a new attempt
            await client.submit("anything", b"", background=True)
        with pytest.raises(NoServersAvailable):
            await client.connect()
