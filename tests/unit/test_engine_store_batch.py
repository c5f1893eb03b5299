"""What a persistent engine hands the store: a batch's adds and removes leave the store as the engine's jobs are.

A store runs a batch's adds before its removes (tests/stores: a key in both ends up deleted), so the engine must not
leave a removal in a batch after an add of the same key.
"""

from __future__ import annotations

from conversation import Conversation, P

from geartrain.server.core.config import EngineConfig
from geartrain.server.core.durable import StoreBatch
from geartrain.server.core.peers import Peer
from geartrain.server.core.records import Removal


def persistent() -> Conversation:
    return Conversation(EngineConfig(handle_prefix=b"H:test", persistent=True))


def committed(talk: Conversation) -> None:
    """Apply what the engine recorded, as the transport does after a successful transaction."""
    batch = talk.engine.take_store_batch()
    assert batch is not None
    talk.engine.store_committed(batch, talk.now)


def stored_job(talk: Conversation, client: Peer, unique: bytes) -> bytes:
    talk.send(client, P.SUBMIT_JOB_BG, b"f", unique, b"data")
    committed(talk)
    output = client.take_output()
    assert output.startswith(b"\0RES") and b"H:test" in output
    return output


def finish_then_submit(unique: bytes) -> StoreBatch:
    """A stored job "k" finishes and, in the same batch (the previous transaction still running), a background
    job with ``unique`` is submitted; the batch the engine then hands the store."""
    talk = persistent()
    client, worker = talk.connect(), talk.worker(b"f")
    stored_job(talk, client, b"k")
    talk.send(worker, P.GRAB_JOB)
    handle = worker.take_output()[12:].split(b"\0")[0]
    talk.send(worker, P.WORK_COMPLETE, handle, b"done")
    talk.send(client, P.SUBMIT_JOB_BG, b"f", unique, b"again")
    batch = talk.engine.take_store_batch()
    assert batch is not None
    assert talk.engine.take_store_batch() is None  # taken once: the next batch starts empty
    return batch


def test_a_finished_job_and_a_new_one_under_its_unique_in_one_batch_keep_the_new_one() -> None:
    batch = finish_then_submit(b"k")
    assert [(j.key, j.data) for j in batch.adds] == [(b"k", b"again")]
    assert batch.removes == []  # the add replaces the record: a removal after it would delete the new job


def test_a_removal_stays_when_the_unique_is_not_reused() -> None:
    batch = finish_then_submit(b"other")
    assert batch.removes == [Removal(b"k", b"f")]
    assert [j.key for j in batch.adds] == [b"other"]


def finish_and_grab(talk: Conversation) -> tuple[Peer, bytes]:
    """Two stored jobs; a worker finishes the first and asks for the next in one read. Returns the worker and
    what may be sent to it before the store has answered."""
    client, worker = talk.connect(), talk.worker(b"f")
    stored_job(talk, client, b"one")
    stored_job(talk, client, b"two")
    talk.send(worker, P.GRAB_JOB)
    handle = worker.take_output()[12:].split(b"\0")[0]
    talk.send(worker, P.WORK_COMPLETE, handle, b"done")
    talk.send(worker, P.GRAB_JOB)
    return worker, worker.take_output()


def test_by_default_the_reply_after_a_result_waits_for_the_deletion() -> None:
    talk = persistent()
    worker, sendable = finish_and_grab(talk)
    assert sendable == b""  # the next JOB_ASSIGN is held
    committed(talk)
    assert b"H:test:2" in worker.take_output()


def test_store_ack_submits_sends_the_next_job_at_once_and_still_deletes() -> None:
    talk = Conversation(EngineConfig(handle_prefix=b"H:test", persistent=True, hold_after_result=False))
    _, sendable = finish_and_grab(talk)
    assert b"H:test:2" in sendable  # no wait for the store
    batch = talk.engine.take_store_batch()
    assert batch is not None and batch.removes == [Removal(b"one", b"f")] and batch.barriers == []
