"""A store is held by one server at a time (issue 14's defect: two servers replaying one queue ran its jobs twice).

Every store, on the real databases: a second holder is refused with a message naming the first; a released, lapsed
or dead holder's store is taken over; a holder whose record another has taken learns it at its next renewal.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from databases import Backend, mysql_raw, postgres_raw, redis_raw
from geartrain.store.base import QueueStore, StoreHeld
from geartrain.store.holder import LEASE, Holder

NETWORK = ("mysql", "postgres", "redis")


def opened(backend: Backend) -> QueueStore:
    store = backend.make()
    store.open()
    return store


def dead_pid() -> int:
    """The pid of a process of this host that has exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def write_record(backend: Backend, holder: Holder, age: float) -> None:
    """Make ``holder`` the store's owner record, renewed ``age`` seconds ago (as another server would have)."""
    text = holder.encode()
    if backend.name == "postgres":
        with postgres_raw() as conn:
            conn.execute(
                "UPDATE geartrain_owner SET holder = %s, renewed = clock_timestamp() - make_interval(secs => %s) "
                "WHERE queue = %s",
                (text, age, backend.table),
            )
    elif backend.name == "mysql":
        with mysql_raw() as conn, conn.cursor() as cur:
            cur.execute(
                "UPDATE geartrain_owner SET holder = %s, renewed = UTC_TIMESTAMP(6) - INTERVAL %s MICROSECOND "
                "WHERE queue = %s",
                (text, int(age * 1_000_000), backend.table),
            )
    else:
        raw = redis_raw()
        try:
            # Redis lets the record expire instead of ageing it: a record of age `age` has LEASE - age to live.
            left = int((LEASE - age) * 1000)
            key = f"gt:{backend.table}:owner"
            if left <= 0:
                raw.delete(key)
            else:
                raw.set(key, text, px=left)
        finally:
            raw.close()


def test_a_second_holder_is_refused_and_told_who_holds_it(backend: Backend) -> None:
    first, second = opened(backend), opened(backend)
    try:
        first.hold(Holder("alpha:4730"))
        with pytest.raises(StoreHeld) as refused:
            second.hold(Holder("beta:4731"))
        message = str(refused.value)
        assert first.description in message
        assert "node alpha:4730" in message and f"pid {os.getpid()}" in message
        assert first.renew_hold()
    finally:
        first.release_hold()
        first.close()
        second.close()


def test_a_released_store_can_be_held_again(backend: Backend) -> None:
    first, second = opened(backend), opened(backend)
    try:
        first.hold(Holder("alpha:4730"))
        first.release_hold()
        second.hold(Holder("beta:4731"))
        assert second.renew_hold()
    finally:
        second.release_hold()
        first.close()
        second.close()


@pytest.mark.parametrize("case", ["dead process of this host", "lapsed lease"])
def test_a_dead_or_lapsed_holder_is_taken_over(backend: Backend, case: str) -> None:
    if backend.name not in NETWORK:
        pytest.skip(f"the {backend.name} store has no owner record to age (its hold is an OS lock or an object)")
    first, second = opened(backend), opened(backend)
    try:
        first.hold(Holder("alpha:4730"))
        if case == "dead process of this host":
            write_record(backend, Holder("alpha:4730", pid=dead_pid()), age=1)
        else:
            write_record(backend, Holder("alpha:4730", host="elsewhere"), age=LEASE + 1)
        second.hold(Holder("beta:4731"))
        assert not first.renew_hold(), "the old holder must learn that it lost the store"
        assert second.renew_hold()
    finally:
        second.release_hold()
        first.close()
        second.close()


def test_a_live_holder_on_another_host_is_not_taken_over(backend: Backend) -> None:
    if backend.name not in NETWORK:
        pytest.skip(f"the {backend.name} store has no owner record another host could write")
    first, second = opened(backend), opened(backend)
    try:
        first.hold(Holder("alpha:4730"))
        other = Holder("gamma:4730", pid=dead_pid(), host="elsewhere")  # its pid means nothing here
        write_record(backend, other, age=1)
        with pytest.raises(StoreHeld, match="node gamma:4730"):
            second.hold(Holder("beta:4731"))
    finally:
        first.close()
        second.close()


def test_a_holder_renews_through_an_outage_of_its_connection(backend: Backend) -> None:
    if backend.kill is None:
        pytest.skip(f"the {backend.name} store has no server connection to drop")
    store = opened(backend)
    try:
        store.hold(Holder("alpha:4730"))
        backend.kill(store)
        store.open()  # what the server does after StoreUnavailable
        assert store.renew_hold()
    finally:
        store.release_hold()
        store.close()
