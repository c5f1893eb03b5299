"""Cluster-wide concurrency and rate, the engine's side (core/shares.py), without a database: a node runs a limited
function's jobs only within the slots and tokens it holds, and says what it could use; and the database's rule for
sharing slots (``allot``), which PostgreSQL runs in Python and Redis in Lua."""

from __future__ import annotations

from conversation import NO_JOB, Conversation, P

from geartrain.lifecycle.policy import parse_policies
from geartrain.server.core import cluster
from geartrain.server.core.config import EngineConfig
from geartrain.server.core.lifecycle import Lifecycle
from geartrain.server.core.shares import Shares, allot, batch_size, bucket_shape


def cluster_talk(policy: str) -> tuple[Conversation, Shares]:
    talk = Conversation(EngineConfig(handle_prefix=b"H:test", persistent=True, cluster=True))
    lifecycle = talk.engine.lifecycle = Lifecycle(talk.engine, parse_policies(policy))
    assert lifecycle.shares is not None
    return talk, lifecycle.shares


def queue_jobs(talk: Conversation, count: int) -> list[bytes]:
    client = talk.connect()
    return [talk.submit(client, b"f", b"u%d" % n, b"x", P.SUBMIT_JOB) for n in range(count)]


# ---------------------------------------------------------------------- the database's rule


def test_one_node_alone_gets_every_slot_it_can_use_and_no_more() -> None:
    assert allot(3, "a", want=3, floor=0, running=0, others=[]) == (3, 3, 3)
    assert allot(3, "a", want=2, floor=0, running=0, others=[]) == (2, 2, 3)
    assert allot(3, "a", want=5, floor=0, running=0, others=[]) == (3, 3, 3)  # never above the capacity


def test_a_node_gets_only_the_slots_no_other_live_node_holds() -> None:
    assert allot(3, "b", want=3, floor=0, running=0, others=[("a", 2, 2)]) == (1, 1, 3)
    assert allot(3, "b", want=3, floor=0, running=0, others=[("a", 3, 3)]) == (0, 0, 3)


def test_a_node_keeps_the_slots_of_what_it_runs_and_of_the_limit_it_kept_while_asking() -> None:
    # It runs 2 and wants none more: it holds 2, whatever is free.
    assert allot(3, "a", want=2, floor=0, running=2, others=[("b", 3, 3)]) == (2, 0, 3)
    assert allot(3, "a", want=0, floor=1, running=0, others=[]) == (1, 0, 3)
    # A lowered capacity: what runs keeps its slots, nothing new is granted.
    assert allot(1, "a", want=1, floor=0, running=3, others=[]) == (3, 1, 1)


def test_while_another_node_wants_more_each_node_wanting_slots_is_capped_at_an_equal_share() -> None:
    # b holds none and wants 3: a (holding 3 and wanting 3) is capped at 2 (the remainder goes to the one holding
    # the most), keeps its 3 while they run, and starts nothing more until it is down to 2.
    held, granted, cap = allot(3, "a", want=3, floor=3, running=3, others=[("b", 0, 3)])
    assert (held, granted, cap) == (3, 2, 2)  # it may start jobs up to 2 again
    assert allot(3, "a", want=3, floor=2, running=2, others=[("b", 0, 3)]) == (2, 2, 2)
    # Then b gets the slot a gave back, and its share stays 1 while a wants more than it holds.
    assert allot(3, "b", want=3, floor=0, running=0, others=[("a", 2, 3)]) == (1, 1, 1)
    # A node wanting nothing does not count: alone with demand, a node gets everything free again.
    assert allot(3, "a", want=3, floor=2, running=2, others=[("b", 1, 1)]) == (2, 2, 3)


def test_with_more_demanding_nodes_than_slots_those_holding_them_keep_them() -> None:
    assert allot(1, "b", want=1, floor=0, running=0, others=[("a", 1, 2)]) == (0, 0, 0)
    assert allot(1, "a", want=2, floor=1, running=1, others=[("b", 0, 1)]) == (1, 1, 1)


def test_rate_batches_are_a_twentieth_of_a_second_of_the_rate_and_a_tenth_of_the_burst() -> None:
    assert batch_size((10.0, 1.0)) == 1
    assert batch_size((100.0, 1.0)) == 5
    assert batch_size((1000.0, 1.0)) == 50
    assert batch_size((600.0, 60.0)) == 1  # 10 a second
    assert batch_size((0.5, 1.0)) == 1
    assert bucket_shape((0.5, 1.0)) == (1.0, 0.5)


# ---------------------------------------------------------------------- the engine's side


def test_without_slots_a_limited_function_hands_out_nothing_until_the_cluster_grants_some() -> None:
    talk, shares = cluster_talk("[functions.f]\nconcurrency = 3\n[functions.g]\nretries = 1\n")
    first, second = talk.worker(b"f", b"g"), talk.worker(b"f")
    queue_jobs(talk, 3)
    function = talk.engine.functions[b"f"]
    assert function.held and function.limit == 0
    assert talk.grab(first) == NO_JOB
    talk.send(first, P.PRE_SLEEP)
    talk.send(second, P.PRE_SLEEP)
    assert shares.wanted(function, 3) == 2  # three queued, two workers free
    shares.set_slots(function, 1)
    assert talk.replies(first) == [(P.NOOP, ())] and talk.replies(second) == [(P.NOOP, ())]
    handle = talk.grab_handle(first)
    assert talk.grab(second) == NO_JOB  # one slot: one at a time
    assert shares.running(function) == 1 and shares.wanted(function, 3) == 2
    talk.send(first, P.WORK_COMPLETE, handle, b"")
    assert talk.grab_handle(second) != handle
    # An unlimited function of the same worker is not touched.
    assert not talk.engine.functions[b"g"].held


def test_a_start_that_uses_the_last_slot_or_token_wakes_the_cluster_node() -> None:
    talk, shares = cluster_talk('[functions.f]\nconcurrency = 2\nrate = "100/s"\n')
    woken: list[int] = []
    shares.on_short = lambda: woken.append(1)
    worker = talk.worker(b"f")
    queue_jobs(talk, 8)
    function = talk.engine.functions[b"f"]
    shares.set_slots(function, 2)
    assert function.held  # slots, but no token yet
    assert shares.needs_tokens(function) == 5  # a batch: a twentieth of a second of 100/s
    shares.add_tokens(function, 5)
    assert not function.held and shares.needs_tokens(function) == 0
    talk.grab_handle(worker)
    assert woken == []  # four tokens left of five, one slot left of two
    other = talk.worker(b"f")
    talk.grab_handle(other)
    assert woken == [1] and function.held  # the last slot
    assert shares.tokens[b"f"] == 3


def test_running_out_of_tokens_holds_the_function_until_more_come() -> None:
    talk, shares = cluster_talk('[functions.f]\nrate = "10/s"\n')
    worker = talk.worker(b"f")
    handles = queue_jobs(talk, 3)
    function = talk.engine.functions[b"f"]
    assert shares.needs_tokens(function) == 1
    shares.add_tokens(function, 1)
    assert talk.grab_handle(worker) == handles[0]
    talk.send(worker, P.WORK_COMPLETE, handles[0], b"")
    assert talk.grab(worker) == NO_JOB
    talk.send(worker, P.PRE_SLEEP)
    assert talk.engine.next_deadline() is None  # no timer of the engine's: the cluster node brings the tokens
    shares.add_tokens(function, 1)
    assert talk.replies(worker) == [(P.NOOP, ())]
    assert talk.grab_handle(worker) == handles[1]


def test_a_node_that_lost_its_lease_holds_nothing_and_a_limit_removed_lifts_the_hold() -> None:
    talk, shares = cluster_talk("[functions.f]\nconcurrency = 2\n")
    worker = talk.worker(b"f")
    queue_jobs(talk, 2)
    function = talk.engine.functions[b"f"]
    shares.set_slots(function, 2)
    shares.reset()
    assert function.held and shares.slots[b"f"] == 0
    talk.send(worker, P.PRE_SLEEP)
    lifecycle = talk.engine.lifecycle
    assert lifecycle is not None
    lifecycle.reload(parse_policies("[functions.f]\nretries = 1\n"), talk.now)
    assert b"f" not in shares.slots and not function.held
    assert talk.replies(worker) == [(P.NOOP, ())]


def test_on_one_server_the_limits_stay_the_engines_own() -> None:
    talk = Conversation(EngineConfig(handle_prefix=b"H:test"))
    lifecycle = talk.engine.lifecycle = Lifecycle(talk.engine, parse_policies("[functions.f]\nconcurrency = 1\n"))
    assert lifecycle.shares is None
    talk.worker(b"f")
    assert talk.engine.functions[b"f"].limit == 1 and not talk.engine.functions[b"f"].held


def test_a_node_claims_of_a_limited_function_what_its_slots_let_it_start_and_one_a_worker() -> None:
    """Claims beyond that would sit here unrun while the node holding the slots has workers waiting; one a worker
    is kept, so that the node's demand shows (Shares.demand counts queued jobs with a worker free for them)."""
    talk, shares = cluster_talk("[functions.f]\nconcurrency = 3\n")
    first, second = talk.worker(b"f", b"g"), talk.worker(b"f")
    talk.send(first, P.PRE_SLEEP)
    talk.send(second, P.PRE_SLEEP)
    assert cluster.wanted(talk.engine, prefetch=16) == {b"f": 2, b"g": 16}  # no slots: one for each worker
    function = talk.engine.functions[b"f"]
    shares.set_slots(function, 3)
    queue_jobs(talk, 1)
    talk.replies(first), talk.replies(second)  # the NOOPs
    talk.grab_handle(first)  # one running of the three slots
    talk.send(second, P.PRE_SLEEP)
    assert cluster.wanted(talk.engine, prefetch=16)[b"f"] == 2 + 2  # two free slots and two workers, none held
