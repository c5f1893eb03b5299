"""The QueueStore contract, run against every store on real database servers (see conftest.py).

What the server relies on: a batch is stored whole or not at all; replay gives every stored job back, fields intact,
in submission order (a re-add counts as a new submission); a removal deletes exactly its (key, function); and a
store object outlives its connection: StoreUnavailable, then open() again, and it works.
"""

from __future__ import annotations

import re
import sys
import time

import pytest

from databases import Backend
from geartrain.server.core.records import Removal, StoredJob, storage_key
from geartrain.store.base import QueueStore, StoreError, StoreMissingDriver, StoreUnavailable
from geartrain.store.url import open_store

pytestmark = pytest.mark.stores

EVERY_BYTE = bytes(range(256))
ONE_MIB = bytes(range(256)) * 4096
BULK = 10_000
BULK_SECONDS = 20.0  # measured well under a second here; generous for a loaded CI machine


def job(
    unique: bytes,
    function: bytes = b"f",
    data: bytes = b"data",
    priority: int = 1,
    when: int = 0,
    reducer: bytes | None = None,
) -> StoredJob:
    """A job as the server stores it: keyed by its unique, or by a fresh key where that would collide."""
    return StoredJob(storage_key(unique), function, unique, priority, data, when, reducer)


def removal(stored: StoredJob) -> Removal:
    return Removal(stored.key, stored.function)


def loaded(store: QueueStore) -> list[StoredJob]:
    return list(store.load())


def test_open_creates_the_table_and_starts_empty(backend: Backend) -> None:
    if backend.table_exists is not None:
        assert not backend.table_exists()
    store = backend.make()
    store.open()
    try:
        if backend.table_exists is not None:
            assert backend.table_exists()
        assert loaded(store) == []
        store.open()  # opening an existing table again (upgrade already done) is fine
        assert loaded(store) == []
    finally:
        store.close()


def test_jobs_come_back_in_submission_order_with_every_field(store: QueueStore) -> None:
    first = [
        job(b"u1", priority=0, data=EVERY_BYTE),
        job(b"u2", priority=2, data=b"\0\0nul\0", when=1_795_393_768),
        job(b"u3", data=b"", reducer=b"reduce-fn"),
        job(b"u4", data=ONE_MIB, reducer=b""),
    ]
    second = [job(b"u0", function=b"g", data=EVERY_BYTE[::-1]), job(b"u5", when=1)]
    store.apply(first, [])
    store.apply(second, [])
    assert loaded(store) == first + second


def test_removes_delete_exactly_the_named_job(store: QueueStore) -> None:
    jobs = [job(b"a", b"f"), job(b"a", b"g"), job(b"b", b"f"), job(b"A", b"f"), job(b"a", b"F")]
    store.apply(jobs, [])
    store.apply([], [removal(jobs[0]), Removal(b"missing", b"f")])  # an unknown key is not an error
    assert loaded(store) == jobs[1:]


def test_a_batch_adds_then_removes(store: QueueStore) -> None:
    keep, gone = job(b"keep"), job(b"gone")
    store.apply([keep, gone], [removal(gone)])
    assert loaded(store) == [keep]


def test_a_readd_replaces_the_job_and_counts_as_the_latest_submission(store: QueueStore) -> None:
    a, b = job(b"a", data=b"old", reducer=b"r"), job(b"b")
    store.apply([a, b], [])
    again = job(b"a", data=b"new", priority=0, when=5)
    store.apply([again], [])
    assert loaded(store) == [b, again]


def test_jobs_without_unique_coexist(store: QueueStore) -> None:
    jobs = [job(b"", data=b"one"), job(b"", data=b"two"), job(b"", data=b"three")]
    assert len({j.key for j in jobs}) == 3
    store.apply(jobs, [])
    back = loaded(store)
    assert back == jobs
    assert all(j.unique == b"" for j in back)
    store.apply([], [removal(jobs[1])])
    assert loaded(store) == [jobs[0], jobs[2]]


def test_dash_unique_round_trips(store: QueueStore) -> None:
    jobs = [job(b"-", data=b"one"), job(b"-", data=b"two"), job(b"a-b")]
    store.apply(jobs, [])
    assert [j.unique for j in loaded(store)] == [b"-", b"-", b"a-b"]


NAMES = {
    "dash": b"resize-image",
    "dashes-at-ends": b"-a--b-",
    "space": b"resize image ",
    "utf8": "größe→☃ 日本".encode(),
    "emoji": "\U0001f600".encode(),
    "invalid-utf8": b"\xff\xfe\x80abc\xc3(",
    "latin1": "caf\xe9".encode("latin-1"),
    "escape-range": "\uf700\uf7ff".encode(),
    "long": b"x" * 63,
    "long-invalid": b"\xff" * 63,
}


@pytest.mark.parametrize("name", NAMES.values(), ids=NAMES.keys())
def test_names_and_keys_round_trip(store: QueueStore, name: bytes) -> None:
    jobs = [job(name, function=b"f"), job(b"u", function=name), job(name, function=name)]
    # Jobs whose names differ only in case or by a trailing space must stay apart (a case-insensitive or
    # space-padding collation would merge them).
    near = {b"u": b"f", name.upper(): name.upper(), name.rstrip(b" "): name.rstrip(b" "), name + b"!": b"f"}
    neighbours = [job(unique, function=function) for unique, function in near.items() if unique != name]
    store.apply(jobs + neighbours, [])
    assert loaded(store) == jobs + neighbours
    store.apply([], [removal(j) for j in jobs])
    assert loaded(store) == neighbours


def test_ten_thousand_adds_in_one_call(store: QueueStore) -> None:
    jobs = [job(b"bulk-%d" % i, data=b"x" * 100, priority=i % 3) for i in range(BULK)]
    started = time.monotonic()
    store.apply(jobs, [])
    added = time.monotonic()
    assert loaded(store) == jobs
    store.apply([], [removal(j) for j in jobs])
    removed = time.monotonic()
    assert loaded(store) == []
    assert added - started < BULK_SECONDS, f"{BULK} adds took {added - started:.1f}s"
    assert removed - added < BULK_SECONDS + 5, f"{BULK} removes took {removed - added:.1f}s"


def test_apply_is_all_or_nothing(backend: Backend, store: QueueStore) -> None:
    if backend.name in ("memory", "redis"):
        # memory: nothing can fail half way. redis: MULTI/EXEC has no rollback and no queued command of ours can
        # be made to fail portably; atomicity there is Redis's own (EXEC runs all or, if never reached, nothing).
        pytest.skip(f"no portable way to make one job of a batch fail in the {backend.name} store")
    before = [job(b"a"), job(b"b")]
    store.apply(before, [])
    # A priority no INTEGER column holds: the database (or the driver) refuses that row, at the end of the batch.
    poison = job(b"poison", priority=2**70)
    with pytest.raises(StoreError):
        store.apply([job(b"c"), job(b"d"), poison], [removal(before[0])])
    assert loaded(store) == before
    after = job(b"e")
    store.apply([after], [removal(before[0])])  # the store is still usable: nothing was left half open
    assert loaded(store) == [before[1], after]


def test_close_then_open_keeps_the_data(backend: Backend, store: QueueStore) -> None:
    jobs = [job(b"a", data=EVERY_BYTE), job(b"", reducer=b"r")]
    store.apply(jobs, [])
    store.close()
    store.open()
    assert loaded(store) == jobs
    fresh = backend.make()  # a restarted server: a new store object on the same table
    fresh.open()
    try:
        assert loaded(fresh) == jobs
    finally:
        fresh.close()


def test_survives_the_server_dropping_the_connection(backend: Backend, store: QueueStore) -> None:
    if backend.kill is None:
        pytest.skip(f"the {backend.name} store has no server connection to drop")
    stored, lost, later = job(b"before"), job(b"lost"), job(b"after")
    store.apply([stored], [])
    backend.kill(store)
    try:
        store.apply([lost], [])
    except StoreUnavailable:
        expected = [stored, later]
    else:
        # redis-py checks a pooled connection before using it and reconnects when the server has closed it, so
        # nothing was sent on the dead one (nothing could be doubled). The SQL drivers must report the loss.
        assert backend.name == "redis", "a lost connection must raise StoreUnavailable"
        expected = [stored, lost, later]
    store.open()  # what the server does after StoreUnavailable
    store.apply([later], [])
    assert loaded(store) == expected


def test_not_open_is_unavailable(backend: Backend) -> None:
    if backend.name == "memory":
        pytest.skip("the memory store has nothing to open")
    store = backend.make()
    with pytest.raises(StoreUnavailable):
        store.apply([job(b"a")], [])
    with pytest.raises(StoreUnavailable):
        loaded(store)


@pytest.mark.parametrize("name", ["mysql", "postgres", "redis"])
def test_an_unreachable_server_is_unavailable(name: str, unused_port: int) -> None:
    urls = {
        "mysql": f"mysql://root@127.0.0.1:{unused_port}/test",
        "postgres": f"postgresql://postgres@127.0.0.1:{unused_port}/test",
        "redis": f"redis://127.0.0.1:{unused_port}/0",
    }
    store = open_store(urls[name])
    assert store is not None
    with pytest.raises(StoreUnavailable):
        store.open()
    with pytest.raises(StoreUnavailable):
        store.apply([job(b"a")], [])


@pytest.mark.parametrize(
    ("url", "module", "extra"),
    [
        ("mysql://root@127.0.0.1/test", "pymysql", "mysql"),
        ("postgresql://127.0.0.1/test", "psycopg", "postgres"),
        ("redis://127.0.0.1/0", "redis", "redis"),
    ],
)
def test_a_missing_driver_names_the_extra(url: str, module: str, extra: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail, as when it is not installed
    with pytest.raises(StoreMissingDriver, match=re.escape(f"pip install 'geartrain[{extra}]'")):
        open_store(url)
