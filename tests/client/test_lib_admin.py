"""The admin client against each server: every command, answered as typed records."""

from __future__ import annotations

import pytest
from libhelpers import running

from geartrain import (
    AdminClient,
    AdminError,
    Client,
    FunctionStatus,
    JobInfo,
    Priority,
    PriorityStatus,
    Worker,
    WorkerJob,
)
from servers import GearmanServer


async def idle(job: WorkerJob) -> bytes:
    return b""


async def test_listings_as_records(gearman_server: GearmanServer) -> None:
    worker = Worker(gearman_server.address, client_id="admin-test-worker")
    worker.register("served", idle)
    worker.register("also-served", idle)
    async with AdminClient(gearman_server.address) as admin, Client(gearman_server.address) as client:
        queued = [
            await client.submit("queued", f"job {priority.name}", unique=f"u-{priority.name}", priority=priority,
                                background=True)
            for priority in Priority
        ]  # fmt: skip
        queued.append(await client.submit("queued", b"no unique", background=True))
        async with running(worker):
            status = {row.name: row for row in await admin.status()}
            assert status["queued"] == FunctionStatus("queued", 4, 0, 0)
            assert status["queued"].queued == 4
            assert status["served"] == FunctionStatus("served", 0, 0, 1)

            priorities = {row.name: row for row in await admin.priority_status()}
            assert priorities["queued"] == PriorityStatus("queued", 1, 2, 1, 0)

            workers = await admin.workers()
            [ours] = [row for row in workers if row.client_id == "admin-test-worker"]
            assert set(ours.functions) == {"served", "also-served"}
            assert ours.address == "127.0.0.1" and ours.fd > 0
            assert all(row.functions == () for row in workers if row is not ours)  # clients, this admin connection

            jobs = await admin.show_jobs()
            assert sorted(job.handle for job in jobs) == sorted(job.handle or "" for job in queued)
            assert all(isinstance(job, JobInfo) and job.retries == 0 and not job.ignore for job in jobs)
            assert sorted(await admin.show_unique_jobs()) == ["", "u-HIGH", "u-LOW", "u-NORMAL"]


async def test_values_and_actions(gearman_server: GearmanServer) -> None:
    async with AdminClient(gearman_server.address) as admin, Client(gearman_server.address) as client:
        version = await admin.version()
        assert version.startswith("1.1.20")
        assert await admin.getpid() == gearman_server.pid
        assert await admin.verbose()

        await admin.create_function("made-by-admin")
        assert "made-by-admin" in {row.name for row in await admin.status()}
        await admin.drop_function("made-by-admin")
        assert "made-by-admin" not in {row.name for row in await admin.status()}
        with pytest.raises(AdminError) as unknown_function:
            await admin.drop_function("made-by-admin")
        assert unknown_function.value.code == "function"  # gearmand: "ERR function not found"

        job = await client.submit("cancel-me", b"", background=True)
        assert await admin.cancel_job(job.handle or "") is True
        assert await admin.cancel_job("H:no-such-job:1") is False

        await admin.maxqueue("cancel-me", 5)
        await admin.maxqueue("cancel-me", 1, 2, 3)
        await admin.maxqueue("cancel-me")

        with pytest.raises(AdminError) as unknown_command:
            await admin.command("no-such-command")
        assert unknown_command.value.code == "UNKNOWN_COMMAND"
        assert unknown_command.value.text == "Unknown server commandno-such-command"
        assert (await admin.command("version"))[0].startswith(b"OK 1.1.20")
        with pytest.raises(ValueError):
            await admin.cancel_job("two words")


async def test_drop_function_with_a_worker_is_refused(gearman_server: GearmanServer) -> None:
    worker = Worker(gearman_server.address)
    worker.register("busy", idle)
    async with running(worker), AdminClient(gearman_server.address) as admin:
        with pytest.raises(AdminError, match="still connected workers"):
            await admin.drop_function("busy")


async def test_reconnects_after_the_server_closed_the_connection(gearman_server: GearmanServer) -> None:
    async with AdminClient(gearman_server.address) as admin:
        assert await admin.getpid() == gearman_server.pid
        # Six tokens make both servers hang up without a word; the next command must still work.
        with pytest.raises(Exception):  # noqa: B017 - whatever the transport reports
            await admin.command("a b c d e f")
        assert await admin.getpid() == gearman_server.pid
