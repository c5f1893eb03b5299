"""The server's side of a store (server/persistence.py) with a writer that starts deletions at once (``remove_now``).

A worker's next reply after a stored job's result waits for the deletion either way; when the writer's quick start
fails (a lost connection), the batch is applied again through the ordinary path, and nothing is lost or released
early.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator, Sequence

from conversation import Conversation, P
from test_engine_store_batch import finish_and_grab

from geartrain.server.core.config import EngineConfig
from geartrain.server.core.records import Removal, StoredJob
from geartrain.server.persistence import Persistence
from geartrain.store.base import StoreUnavailable

Done = Callable[[BaseException | None], None]


class FakeWriter:
    """A batch writer that records what it is given; each deletion started by remove_now waits for the test."""

    concurrency = 4

    def __init__(self, starts: bool = True) -> None:
        self.starts = starts
        self.started: list[tuple[list[Removal], Done]] = []
        self.applied: list[tuple[list[StoredJob], list[Removal]]] = []

    async def open(self) -> None:
        pass

    async def apply(self, adds: Sequence[StoredJob], removes: Sequence[Removal]) -> None:
        self.applied.append((list(adds), list(removes)))

    def remove_now(self, removes: Sequence[Removal], done: Done) -> bool:
        if self.starts:
            self.started.append((list(removes), done))
        return self.starts

    def close(self) -> None:
        pass


class FakeStore:
    description = "fake://"
    hold_renewal = None

    def __init__(self, writer: FakeWriter) -> None:
        self.writer = writer

    def open(self) -> None:
        pass

    def load(self) -> Iterator[StoredJob]:
        return iter(())

    def apply(self, adds: Sequence[StoredJob], removes: Sequence[Removal]) -> None:
        raise AssertionError("a store with a writer is not applied on the thread")

    def batch_writer(self) -> FakeWriter:
        return self.writer

    def close(self) -> None:
        pass


def scenario(writer: FakeWriter, steps: Callable[[Persistence, Conversation], None]) -> None:
    async def run() -> None:
        talk = Conversation(EngineConfig(handle_prefix=b"H:test", persistent=True))
        persistence = Persistence(FakeStore(writer), talk.engine, lambda: None)  # type: ignore[arg-type]
        persistence._reconnect = False  # as after the first batch: the writer is open
        try:
            steps(persistence, talk)
            await persistence.flush()
        finally:
            persistence.close()

    asyncio.run(run())


def test_a_deletion_started_at_once_releases_the_worker_when_the_writer_calls_back() -> None:
    writer = FakeWriter()

    def steps(persistence: Persistence, talk: Conversation) -> None:
        worker, sendable = finish_and_grab(talk)
        assert sendable == b""
        persistence.kick()
        [(removes, done)] = writer.started
        assert removes == [Removal(b"one", b"f")] and writer.applied == []
        assert worker.take_output() == b""  # still held: the database has not answered
        done(None)
        assert b"H:test:2" in worker.take_output()
        assert persistence.commits == 1

    scenario(writer, steps)
    assert writer.applied == []


def test_a_failed_quick_deletion_is_applied_again_the_ordinary_way_before_the_worker_hears() -> None:
    writer = FakeWriter()
    held: list[bytes] = []

    def steps(persistence: Persistence, talk: Conversation) -> None:
        worker, _ = finish_and_grab(talk)
        persistence.kick()
        [(_, done)] = writer.started
        done(StoreUnavailable("fake://: connection lost"))
        held.append(worker.take_output())  # the retry runs as a task: nothing released yet

    scenario(writer, steps)
    assert held == [b""]
    assert writer.applied == [([], [Removal(b"one", b"f")])]


def test_a_writer_that_cannot_start_at_once_gets_the_batch_through_apply() -> None:
    writer = FakeWriter(starts=False)

    def steps(persistence: Persistence, talk: Conversation) -> None:
        finish_and_grab(talk)
        persistence.kick()

    scenario(writer, steps)
    assert writer.applied == [([], [Removal(b"one", b"f")])]


def test_submits_never_take_the_quick_path() -> None:
    writer = FakeWriter()

    def steps(persistence: Persistence, talk: Conversation) -> None:
        client = talk.connect()
        talk.send(client, P.SUBMIT_JOB_BG, b"f", b"u", b"data")
        persistence.kick()

    scenario(writer, steps)
    assert writer.started == [] and [len(adds) for adds, _ in writer.applied] == [1]


class FlakyWriter(FakeWriter):
    """Refuses batches and connections while ``down``."""

    def __init__(self) -> None:
        super().__init__(starts=False)
        self.down = True
        self.opened = 0

    async def open(self) -> None:
        self.opened += 1
        if self.down:
            raise StoreUnavailable("fake://: connection refused")

    async def apply(self, adds: Sequence[StoredJob], removes: Sequence[Removal]) -> None:
        if self.down:
            raise StoreUnavailable("fake://: connection refused")
        await super().apply(adds, removes)


def test_after_an_outage_the_store_is_found_again_with_nothing_to_write() -> None:
    """A refused submit leaves nothing to retry; the store is still reconnected (after a backoff) and the server is
    up again without waiting for a new batch (a node that is not ready gets none)."""
    writer = FlakyWriter()

    async def run() -> None:
        talk = Conversation(EngineConfig(handle_prefix=b"H:test", persistent=True))
        persistence = Persistence(FakeStore(writer), talk.engine, lambda: None)  # type: ignore[arg-type]
        try:
            client = talk.connect()
            talk.send(client, P.SUBMIT_JOB_BG, b"f", b"u", b"data")
            persistence.kick()
            await persistence.flush()
            assert not persistence.up and b"QUEUE_ERROR" in client.take_output()
            await asyncio.sleep(0.5)  # backoffs of 0.1, 0.2 s: tried again, still down
            assert not persistence.up and writer.opened >= 2
            writer.down = False
            for _ in range(100):
                if persistence.up:
                    break
                await asyncio.sleep(0.05)
            assert persistence.up and writer.applied == []  # found again, with nothing written
        finally:
            persistence.close()

    asyncio.run(run())


def test_a_retry_that_runs_before_its_backoff_has_ended_still_retries() -> None:
    """uvloop's timers count whole milliseconds, so a retry can run just before time.monotonic() reaches the end of
    its backoff. It once refused the batch again and left no timer: the deletions waited and the store stayed
    "unavailable" (a cluster node cut off from its database never became ready again)."""
    writer = FlakyWriter()
    writer.down = False

    async def run() -> None:
        talk = Conversation(EngineConfig(handle_prefix=b"H:test", persistent=True))
        persistence = Persistence(FakeStore(writer), talk.engine, lambda: None)  # type: ignore[arg-type]
        try:
            client, worker = talk.connect(), talk.worker(b"f")
            talk.send(client, P.SUBMIT_JOB_BG, b"f", b"u", b"data")
            persistence.kick()
            await persistence.flush()
            assert persistence.up and len(writer.applied) == 1
            writer.down = True
            talk.send(worker, P.GRAB_JOB)
            handle = worker.take_output()[12:].split(b"\0")[0]
            talk.send(worker, P.WORK_COMPLETE, handle, b"done")
            persistence.kick()
            await persistence.flush()
            assert not persistence.up
            persistence._next_attempt = time.monotonic() + 3600  # every clock check now says "too early"
            writer.down = False
            for _ in range(100):
                if persistence.up:
                    break
                await asyncio.sleep(0.05)
            assert persistence.up and writer.applied[-1] == ([], [Removal(b"u", b"f")])
        finally:
            persistence.close()

    asyncio.run(run())
