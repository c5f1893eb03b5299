"""The network stores' batch writers (the server's path for batches): the same records as the store's own apply.

Each test runs one coroutine on a fresh event loop against the real database: what a writer stores, the store reads
back (fields, order, re-adds); batches of deletions run side by side; a lost connection is StoreUnavailable and
``open()`` again recovers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from databases import BACKENDS, Backend, mysql_raw, postgres_raw, redis_raw, require_service, wait_for
from geartrain.server.core.records import Removal, StoredJob, storage_key
from geartrain.store.base import BatchWriter, QueueStore, StoreUnavailable

pytestmark = pytest.mark.stores


# Overrides conftest's backend (every store) with the network stores only; conftest's `store` opens it.
@pytest.fixture(params=["mysql", "postgres", "redis"])
def backend(request: pytest.FixtureRequest, tmp_path: object) -> Iterator[Backend]:
    require_service(request.param)
    yield from BACKENDS[request.param](tmp_path)  # type: ignore[arg-type]


def job(unique: bytes, data: bytes = b"data", priority: int = 1, when: int = 0) -> StoredJob:
    return StoredJob(storage_key(unique), b"f", unique, priority, data, when, None)


def gone(stored: StoredJob) -> Removal:
    return Removal(stored.key, stored.function)


def writer_of(store: QueueStore) -> BatchWriter:
    writer = store.batch_writer()
    assert writer is not None, f"{store.description} has no batch writer"
    return writer


def test_a_writer_stores_what_the_store_reads_back(store: QueueStore) -> None:
    a, b, c = job(b"a", data=bytes(range(256))), job(b"", priority=0, when=7), job(b"c")
    again = job(b"a", data=b"new")

    async def scenario() -> None:
        writer = writer_of(store)
        await writer.open()
        try:
            await writer.apply([a, b, c], [])
            await writer.apply([again], [gone(c)])  # a re-add counts as the latest submission
            await writer.apply([job(b"d")], [Removal(b"d", b"f")])  # adds come before removes: d ends up deleted
        finally:
            writer.close()

    asyncio.run(scenario())
    assert list(store.load()) == [b, again]


def test_deletions_run_side_by_side(store: QueueStore) -> None:
    jobs = [job(b"job-%d" % i) for i in range(40)]
    store.apply(jobs, [])

    async def scenario() -> None:
        writer = writer_of(store)
        assert writer.concurrency > 1
        await writer.open()
        try:
            batches = [[gone(j) for j in jobs[i : i + 5]] for i in range(0, 35, 5)]
            await asyncio.gather(*(writer.apply([], batch) for batch in batches[: writer.concurrency]))
            await asyncio.gather(*(writer.apply([], batch) for batch in batches[writer.concurrency :]))
        finally:
            writer.close()

    asyncio.run(scenario())
    assert list(store.load()) == jobs[35:]


def drop_connections(backend: Backend) -> None:
    """Every connection of the store's, closed from the server's side."""
    if backend.name == "postgres":
        with postgres_raw() as conn:
            mine = "FROM pg_stat_activity WHERE application_name = %s"
            conn.execute(f"SELECT pg_terminate_backend(pid) {mine}", (backend.table,))
            wait_for(lambda: conn.execute(f"SELECT COUNT(*) {mine}", (backend.table,)).fetchone()[0] == 0, "exits")
    elif backend.name == "mysql":
        others = "FROM information_schema.PROCESSLIST WHERE DB = DATABASE() AND ID <> CONNECTION_ID()"
        with mysql_raw() as conn, conn.cursor() as cur:
            cur.execute(f"SELECT ID {others}")
            for (thread_id,) in cur.fetchall():
                cur.execute(f"KILL {int(thread_id)}")

            def killed() -> bool:
                cur.execute(f"SELECT COUNT(*) {others}")
                return int(cur.fetchone()[0]) == 0

            wait_for(killed, "MySQL to drop the connections")
    else:
        raw = redis_raw()
        try:
            me = raw.client_id()
            for client in raw.client_list():
                if int(client["id"]) != me:
                    raw.execute_command("CLIENT", "KILL", "ID", client["id"])
            wait_for(lambda: len(raw.client_list()) == 1, "Redis to drop the clients")
        finally:
            raw.close()


def test_a_lost_connection_fails_its_batch_and_the_next_one_connects_afresh(
    backend: Backend, store: QueueStore
) -> None:
    first, lost, later, again = job(b"first"), job(b"lost"), job(b"later"), job(b"again")

    async def scenario() -> list[StoredJob]:
        writer = writer_of(store)
        await writer.open()
        try:
            await writer.apply([first], [])
            drop_connections(backend)
            expected = [first, later, again]
            try:
                await writer.apply([lost], [])
            except StoreUnavailable:
                pass
            else:  # the loss was noticed before anything was sent, and a new connection took the batch
                expected = [first, lost, later, again]
            await writer.apply([later], [])  # no open(): the writer replaced the lost connection itself
            await writer.open()  # what the server does after an outage: every connection anew
            await writer.apply([again], [])
            return expected
        finally:
            writer.close()

    expected = asyncio.run(scenario())
    store.open()
    assert list(store.load()) == expected


async def remove_now(writer: BatchWriter, removes: list[Removal]) -> BaseException | None:
    """Run ``writer.remove_now`` to its end: its error (None: committed). Fails the test if it would not start."""
    done: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()
    assert writer.remove_now(removes, done.set_result), "remove_now did not start on an open, idle writer"
    return await asyncio.wait_for(done, 10)


def test_remove_now_deletes_one_job_and_several(store: QueueStore) -> None:
    # Keys that need quoting in a PostgreSQL array literal and escaping in MySQL, and bytes that are not UTF-8.
    jobs = [job(b"plain"), job(b'quo"te'), job(b"back\\slash"), job(b"comma,{brace}"), job(b"\xff\x00bin"), job(b"x")]
    store.apply(jobs, [])

    async def scenario() -> None:
        writer = writer_of(store)
        await writer.open()
        try:
            assert await remove_now(writer, [gone(jobs[0])]) is None
            assert await remove_now(writer, [gone(j) for j in jobs[1:5]]) is None
            assert await remove_now(writer, [Removal(b"never-stored", b"f")]) is None  # deleting nothing is no error
        finally:
            writer.close()

    asyncio.run(scenario())
    assert list(store.load()) == [jobs[5]]


def test_remove_now_says_no_when_it_cannot_start_and_fails_on_a_lost_connection(
    backend: Backend, store: QueueStore
) -> None:
    kept, lost = job(b"kept"), job(b"lost")
    store.apply([kept, lost], [])

    async def scenario() -> None:
        writer = writer_of(store)
        assert not writer.remove_now([gone(kept)], lambda error: pytest.fail("called back")), "nothing is open yet"
        await writer.open()
        try:
            drop_connections(backend)
            done: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()
            if writer.remove_now([gone(lost)], done.set_result):
                error = await asyncio.wait_for(done, 10)
                assert isinstance(error, StoreUnavailable), error  # what the server applies again through apply()
            await writer.apply([], [gone(lost)])  # the ordinary path connects afresh
        finally:
            writer.close()

    asyncio.run(scenario())
    store.open()
    assert list(store.load()) == [kept]


def test_remove_now_and_apply_take_turns_on_the_same_connections(backend: Backend, store: QueueStore) -> None:
    """PostgreSQL's writer watches a connection's socket itself between deletions and hands it back to psycopg for
    apply(); a connection the server closes while idle is dropped, and the next batch connects afresh."""
    jobs = [job(b"turn-%d" % i) for i in range(6)]
    store.apply(jobs, [])

    async def scenario() -> None:
        writer = writer_of(store)
        await writer.open()
        try:
            assert await remove_now(writer, [gone(jobs[0])]) is None
            await writer.apply([], [gone(jobs[1])])
            assert await remove_now(writer, [gone(jobs[2])]) is None
            drop_connections(backend)
            await asyncio.sleep(0.2)  # the loop reads the closed connection while it is idle
            done: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()
            if writer.remove_now([gone(jobs[3])], done.set_result):
                assert isinstance(await asyncio.wait_for(done, 10), StoreUnavailable)
            await writer.apply([], [gone(jobs[3])])  # connects afresh
            assert await remove_now(writer, [gone(jobs[4])]) is None
        finally:
            writer.close()

    asyncio.run(scenario())
    store.open()
    assert list(store.load()) == [jobs[5]]


@pytest.mark.parametrize("backend", ["postgres", "redis"], indirect=True)
def test_a_cluster_nodes_deletions_take_the_quick_path(backend: Backend, store: QueueStore) -> None:
    """A node deletes finished jobs through remove_now as a server of its own does: on PostgreSQL with the same
    statement (the cluster's statement for a batch without adds is the plain one); on Redis with the cluster's batch
    script, which also takes the jobs out of the cluster's index (a queued job leaves its function's queue)."""
    jobs = [job(b"node-%d" % i) for i in range(4)]
    if backend.name == "postgres":
        from geartrain.cluster.postgres import PostgresClusterSql
        from geartrain.store.postgres import PostgresStore

        assert isinstance(store, PostgresStore)
        store.apply(jobs, [])
        store.cluster = PostgresClusterSql(store, "node-a", 15.0)
    else:
        from geartrain.cluster.redis import RedisClusterKeys
        from geartrain.store.redis import RedisStore

        assert isinstance(store, RedisStore)
        store.cluster = keys = RedisClusterKeys(store, "node-a", 15.0)
        queue = keys.base + b":q:f"

    async def scenario() -> None:
        writer = writer_of(store)
        await writer.open()
        try:
            if backend.name == "redis":
                await writer.apply(jobs, [])  # through the cluster's script: indexed in the function's queue
                assert redis_raw().zcard(queue) == 4
            assert await remove_now(writer, [gone(jobs[0])]) is None
            assert await remove_now(writer, [gone(j) for j in jobs[1:3]]) is None
        finally:
            writer.close()

    asyncio.run(scenario())
    if backend.name == "redis":
        assert redis_raw().zcard(queue) == 1
    store.cluster = None
    assert list(store.load()) == [jobs[3]]
