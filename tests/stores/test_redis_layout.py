"""The Redis store on gearmand's key layout: what gearmand reads of ours, and how gearmand's records are read."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from databases import REDIS_URL, redis_raw, require_service, unique_name
from geartrain.server.core.records import Removal, StoredJob
from geartrain.store.redis import RedisStore
from geartrain.store.url import open_store

pytestmark = pytest.mark.stores


@pytest.fixture
def prefix() -> Iterator[str]:
    require_service("redis")
    name = unique_name()
    yield name
    raw = redis_raw()
    try:
        for pattern in (f"{name}*", f"gt:{name}*"):
            for key in raw.scan_iter(match=pattern, count=1000):
                raw.delete(key)
    finally:
        raw.close()


@pytest.fixture
def raw() -> Iterator[Any]:
    client = redis_raw()
    yield client
    client.close()


def _store(prefix: str) -> RedisStore:
    store = open_store(f"{REDIS_URL}?prefix={prefix}")
    assert isinstance(store, RedisStore)
    store.open()
    return store


def test_job_hashes_hold_only_what_gearmand_reads(prefix: str, raw: Any) -> None:
    store = _store(prefix)
    try:
        store.apply([StoredJob(b"u", b"f", b"u", 0, b"x" * 200, 77, b"r")], [])
    finally:
        store.close()
    p = prefix.encode()
    # Released gearmand versions refuse to start on a job hash with any other field.
    assert raw.hgetall(p + b"-f-u") == {b"data": b"x" * 200, b"priority": b"0"}
    side = raw.hgetall(b"gt:" + p + b"-f-u")
    assert side[b"function"] == b"f" and side[b"when"] == b"77" and side[b"reducer"] == b"r"
    # gearmand walks every key starting with the prefix: nothing of ours but job hashes may start with it.
    assert sorted(raw.scan_iter(match=p + b"*")) == [p + b"-f-u"]


def test_records_gearmand_wrote_are_read(prefix: str, raw: Any) -> None:
    p = prefix.encode()
    raw.hset(p + b"-resize-u1", mapping={b"data": b"\0bin\xff", b"priority": b"0"})  # gearmand 1.1.20 .. 2.0.0
    head = {b"data": b"d", b"priority": b"2", b"function": b"img-resize", b"unique": b"u-2"}
    raw.hset(p + b"-img-resize-u-2", mapping=head)  # gearmand's git HEAD: names in fields
    raw.set(p + b"-old-u3", b"plain")  # gearmand <= 1.1.15: a string value
    raw.hset(p + b"-legacy-dash-u4", mapping={b"data": b"e", b"priority": b"1"})  # ambiguous: best effort
    raw.hset(p + b"-nodash", mapping={b"data": b"?", b"priority": b"1"})  # not a job key: ignored
    store = _store(prefix)
    try:
        ours = StoredJob(b"a", b"z", b"a", 1, b"ours")
        store.apply([ours], [])
        got = list(store.load())
        assert got == [
            StoredJob(b"u-2", b"img-resize", b"u-2", 2, b"d"),  # gearmand's records first, in key order
            StoredJob(b"dash-u4", b"legacy", b"dash-u4", 1, b"e"),
            StoredJob(b"u3", b"old", b"u3", 1, b"plain"),
            StoredJob(b"u1", b"resize", b"u1", 0, b"\0bin\xff"),
            ours,
        ]
        store.apply([], [Removal(job.key, job.function) for job in got])
        assert list(store.load()) == []
        assert sorted(raw.scan_iter(match=p + b"*")) == [p + b"-nodash"]
    finally:
        store.close()


def test_a_stale_side_record_is_ignored(prefix: str, raw: Any) -> None:
    """gearmand finished our job and stored another under the same key: our when/reducer no longer apply."""
    store = _store(prefix)
    try:
        store.apply([StoredJob(b"u", b"f", b"u", 0, b"ours", 99, b"r")], [])
        p = prefix.encode()
        raw.delete(p + b"-f-u")
        raw.hset(p + b"-f-u", mapping={b"data": b"gearmand's", b"priority": b"1"})
        assert list(store.load()) == [StoredJob(b"u", b"f", b"u", 1, b"gearmand's")]
    finally:
        store.close()


def test_replay_sweeps_side_records_of_jobs_gearmand_finished(prefix: str, raw: Any) -> None:
    store = _store(prefix)
    p = prefix.encode()
    try:
        store.apply([StoredJob(b"u1", b"f", b"u1", 1, b"done"), StoredJob(b"u2", b"f", b"u2", 1, b"kept")], [])
        raw.delete(p + b"-f-u1")  # gearmand ran it: it deletes the job hash and knows nothing of ours
        assert [job.data for job in store.load()] == [b"kept"]
        assert sorted(raw.scan_iter(match=b"gt:" + p + b"-*")) == [b"gt:" + p + b"-f-u2"]
        assert raw.exists(b"gt:" + p + b":seq")  # the counter is no side record
    finally:
        store.close()


def test_a_job_stored_by_another_server_during_replay_keeps_its_side_record(
    prefix: str, raw: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sweep must not take a live job's record for an orphan: sides are listed first, then job hashes."""
    store, other = _store(prefix), _store(prefix)
    p = prefix.encode()
    try:
        client = store._client  # the test steps in between the two listings of one replay
        listings = []
        scan = client.scan_iter

        def scan_then_store(*args: Any, **kwargs: Any) -> Any:
            listed = list(scan(*args, **kwargs))
            listings.append(listed)
            if len(listings) == 1:  # between the two listings, another server stores a job
                other.apply([StoredJob(b"u", b"f", b"u", 1, b"meanwhile")], [])
            return iter(listed)

        monkeypatch.setattr(client, "scan_iter", scan_then_store)
        assert [job.data for job in store.load()] == [b"meanwhile"]
        assert raw.hgetall(b"gt:" + p + b"-f-u")[b"function"] == b"f"
    finally:
        store.close()
        other.close()


def test_glob_characters_in_the_prefix_are_literal(prefix: str, raw: Any) -> None:
    wild, other = _store(prefix + "*"), _store(prefix + "x")
    try:
        other.apply([StoredJob(b"u", b"f", b"u", 1, b"other")], [])
        assert list(wild.load()) == []
        wild.apply([StoredJob(b"u", b"f", b"u", 1, b"wild")], [])
        assert [job.data for job in wild.load()] == [b"wild"]
        assert [job.data for job in other.load()] == [b"other"]
    finally:
        wild.close()
        other.close()
