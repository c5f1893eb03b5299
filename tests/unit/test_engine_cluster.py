"""The engine's cluster rules, without a database: which new jobs a node keeps, which it leaves to the cluster, how
many it wants to claim, and letting go of what it holds."""

from __future__ import annotations

import struct

from conversation import Conversation, P

from geartrain.server.core import cluster
from geartrain.server.core.config import EngineConfig
from geartrain.server.core.peers import Peer
from geartrain.server.core.records import Removal, StoredJob


def node() -> Conversation:
    return Conversation(EngineConfig(handle_prefix=b"H:test", persistent=True, cluster=True))


def commit(talk: Conversation, elsewhere: frozenset[int] = frozenset()) -> list[StoredJob]:
    batch = talk.engine.take_store_batch()
    assert batch is not None
    talk.engine.store_committed(batch, talk.now, elsewhere=elsewhere)
    return batch.adds


def acknowledged(client: Peer) -> bool:
    """The client got its JOB_CREATED (the placeholder it waited behind is resolved)."""
    output = client.take_output()
    return output.startswith(b"\0RES\0\0\0\x08") and b"H:test" in output


def test_without_a_sleeping_worker_a_new_job_is_left_to_the_cluster() -> None:
    talk = node()
    client = talk.connect()
    talk.send(client, P.SUBMIT_JOB_BG, b"f", b"u1", b"data")
    adds = commit(talk)
    assert [add.owned for add in adds] == [False]
    assert acknowledged(client)  # acknowledged: the store holds it
    assert talk.engine.jobs == {}  # and this node forgets it: whichever node claims it runs it
    assert talk.engine.take_store_batch() is None  # forgetting is not deleting


def test_a_sleeping_worker_keeps_one_new_job_here_and_the_rest_go_to_the_cluster() -> None:
    talk = node()
    worker, client = talk.worker(b"f"), talk.connect()
    talk.send(worker, P.PRE_SLEEP)
    for unique in (b"u1", b"u2", b"u3"):
        talk.send(client, P.SUBMIT_JOB_BG, b"f", unique, b"data")
    adds = commit(talk)
    assert [add.owned for add in adds] == [True, False, False]
    assert [job.unique for job in talk.engine.jobs.values()] == [b"u1"]
    assert [r[0] for r in talk.replies(worker)] == [P.NOOP]
    assert talk.engine.owned_pending == {}


def test_a_job_another_node_stored_first_is_not_run_here() -> None:
    talk = node()
    worker, client = talk.worker(b"f"), talk.connect()
    talk.send(worker, P.PRE_SLEEP)
    talk.send(client, P.SUBMIT_JOB_BG, b"f", b"same", b"data")
    adds = commit(talk, elsewhere=frozenset({0}))
    assert adds[0].owned
    assert acknowledged(client)  # coalesced, as on one server
    assert talk.engine.jobs == {}
    assert talk.engine.take_store_batch() is None  # and the other node's record stays


def test_a_sleeping_worker_makes_its_functions_hungry_and_wanted() -> None:
    talk = node()
    worker = talk.worker(b"f", b"g")
    talk.worker(b"g")
    assert talk.engine.hungry == set()
    talk.send(worker, P.PRE_SLEEP)
    assert {f.name for f in talk.engine.hungry or ()} == {b"f", b"g"}
    wants = cluster.wanted(talk.engine, prefetch=2)
    assert wants == {b"f": 2, b"g": 4}  # two per registered worker
    assert talk.engine.hungry == set()  # taken


def test_a_node_holding_back_wants_nothing() -> None:
    talk = node()
    worker = talk.worker(b"f")
    talk.send(worker, P.PRE_SLEEP)
    talk.engine.hold_queued = True
    assert cluster.wanted(talk.engine) == {}


def test_claimed_jobs_are_queued_and_released_ones_leave_without_a_deletion() -> None:
    talk = node()
    worker = talk.worker(b"f")
    for key in (b"a", b"b", b"c"):
        talk.engine.restore(StoredJob(key, b"f", key, 1, b"data"), talk.now)
    assert cluster.wanted(talk.engine, prefetch=4) == {}  # three held: more than half of four per worker
    assert cluster.wanted(talk.engine, prefetch=6) == {b"f": 3}  # at half: fill up
    talk.send(worker, P.GRAB_JOB_UNIQ)
    assert [r[0] for r in talk.replies(worker)] == [P.JOB_ASSIGN_UNIQ]
    released = cluster.release_queued(talk.engine)
    assert released == [Removal(b"b", b"f"), Removal(b"c", b"f")]  # the running one stays with its worker
    assert len(talk.engine.jobs) == 1
    assert talk.engine.functions[b"f"].queued == [0, 0, 0]
    assert talk.engine.take_store_batch() is None


# ---------------------------------------------------------------------- foreground jobs across nodes


def with_relay(talk: Conversation) -> Peer:
    relay = talk.connect("cluster")
    talk.engine.cluster_relay = relay
    return relay


def test_a_foreground_job_without_a_worker_here_is_stored_for_another_node_and_its_packets_come_back() -> None:
    talk = node()
    relay = with_relay(talk)
    client = talk.connect()
    talk.send(client, P.SUBMIT_JOB, b"f", b"u", b"data")
    [add] = commit(talk)
    assert add.waiting and not add.owned
    output = client.take_output()
    assert output.startswith(b"\0RES\0\0\0\x08")  # JOB_CREATED once stored
    [job] = talk.engine.jobs.values()
    assert job.worker is relay and relay.assigned == {job.handle: job}
    cluster.relayed(talk.engine, b"u", b"f", P.WORK_DATA, (b"part",), talk.now)
    cluster.relayed(talk.engine, b"u", b"f", P.WORK_STATUS, (b"1", b"2"), talk.now)
    cluster.relayed(talk.engine, b"u", b"f", P.WORK_COMPLETE, (b"done",), talk.now)
    assert talk.replies(client) == [
        (P.WORK_DATA, (job.handle, b"part")),
        (P.WORK_STATUS, (job.handle, b"1", b"2")),
        (P.WORK_COMPLETE, (job.handle, b"done")),
    ]
    assert talk.engine.jobs == {} and talk.engine.remote_jobs == {}
    assert talk.engine.take_store_batch() is None  # the runner deleted the record


def test_a_job_run_for_another_nodes_client_sends_its_packets_to_that_nodes_relay() -> None:
    talk = node()
    relay = talk.connect("cluster:other")
    worker = talk.worker(b"f")
    job = talk.engine.restore(StoredJob(b"u", b"f", b"u", 1, b"data"), talk.now)
    cluster.run_for(talk.engine, job, relay)
    talk.send(worker, P.GRAB_JOB)
    talk.replies(worker)
    talk.send(worker, P.WORK_COMPLETE, job.handle, b"done")
    assert talk.replies(relay) == [(P.WORK_COMPLETE, (job.handle, b"done"))]
    batch = talk.engine.take_store_batch()
    assert batch is not None and batch.removes == [Removal(b"u", b"f")]  # the runner deletes the record


def test_a_waiting_job_whose_client_leaves_is_deleted_from_the_store() -> None:
    talk = node()
    relay = with_relay(talk)
    client = talk.connect()
    talk.send(client, P.SUBMIT_JOB, b"f", b"u", b"data")
    commit(talk)
    talk.disconnect(client)
    assert talk.engine.jobs == {} and relay.assigned == {}
    batch = talk.engine.take_store_batch()
    assert batch is not None and batch.removes == [Removal(b"u", b"f")]
    cluster.relayed(talk.engine, b"u", b"f", P.WORK_COMPLETE, (b"late",), talk.now)  # ignored
    assert talk.engine.jobs == {}


def test_with_a_worker_here_a_foreground_job_stays_here() -> None:
    talk = node()
    with_relay(talk)
    talk.worker(b"f")
    client = talk.connect()
    talk.send(client, P.SUBMIT_JOB, b"f", b"u", b"data")
    assert talk.engine.take_store_batch() is None
    assert [r[0] for r in talk.replies(client)] == [P.JOB_CREATED]


def test_status_cluster_is_an_admin_read_that_only_a_cluster_node_answers() -> None:
    from geartrain.protocol.admin import AdminCommand, parse
    from geartrain.security.guard import ADMIN_READ_COMMANDS
    from geartrain.server.core.admin import AdminCommands

    assert parse(b"status cluster") == AdminCommand("status cluster")
    assert parse(b"STATUS Cluster") == AdminCommand("status cluster")
    assert parse(b"status") == AdminCommand("status")
    assert "status cluster" in ADMIN_READ_COMMANDS
    talk = node()
    admin = AdminCommands(talk.engine)
    peer = talk.connect()
    admin.run(peer, b"status cluster")
    assert peer.take_output().startswith(b"ERR NOT_IN_CLUSTER ")
    admin.cluster_rows = lambda: [(b"n1", b"127.0.0.1:4730", 2, 5, 1)]
    admin.run(peer, b"status cluster")
    assert peer.take_output() == b"n1\t127.0.0.1:4730\t2\t5\t1\n.\n"


def test_a_queued_job_run_for_another_nodes_client_is_released_too() -> None:
    talk = node()
    relay, client = talk.connect("cluster:other"), talk.connect()
    talk.worker(b"f")
    mine = talk.engine.restore(StoredJob(b"mine", b"f", b"mine", 1, b"data"), talk.now)
    theirs = talk.engine.restore(StoredJob(b"theirs", b"f", b"theirs", 1, b"data"), talk.now)
    cluster.run_for(talk.engine, theirs, relay)
    mine.clients, mine.background = (client,), False  # a client of this node waits for this one
    client.waiting.add(mine)
    released = cluster.release_queued(talk.engine, [relay])
    assert released == [Removal(b"theirs", b"f")]
    assert relay.waiting == set() and list(talk.engine.jobs.values()) == [mine]


def status_res(ptype: int, *args: bytes) -> bytes:
    body = b"\0".join(args)
    return b"\0RES" + struct.pack(">II", ptype, len(body)) + body


def test_the_status_of_a_job_left_to_the_cluster_is_asked_of_the_store() -> None:
    talk = node()
    client = talk.connect()
    talk.send(client, P.SUBMIT_JOB_BG, b"f", b"u1", b"data")
    commit(talk)
    handle = client.take_output()[12:]
    assert talk.engine.jobs == {}
    talk.send(client, P.GET_STATUS, handle)  # a handle this node holds no job for: the store is asked
    talk.send(client, P.GET_STATUS_UNIQUE, b"u1")  # a unique it left to the cluster: the same
    talk.send(client, P.ECHO_REQ, b"after")
    [(asked, no_unique, ack), (asked_again, unique, ack_unique)] = talk.engine.status_lookups
    assert (asked, no_unique, asked_again, unique) == (handle, None, handle, b"u1")
    assert client.take_output() == b""  # every reply waits, in order, behind the first
    talk.engine.status_lookups.clear()
    talk.engine.status_found(handle, None, ack, (True, 3, 7))  # a node runs it; its worker said 3/7
    talk.engine.status_found(handle, b"u1", ack_unique, None)  # and now it is gone
    assert client.take_output() == (
        status_res(P.STATUS_RES, handle, b"1", b"1", b"3", b"7")
        + status_res(P.STATUS_RES_UNIQUE, b"u1", b"0", b"0", b"0", b"0", b"0")
        + status_res(P.ECHO_RES, b"after")
    )
    assert talk.engine.elsewhere_by_unique == {}  # gone: forgotten
    assert talk.ask(client, P.GET_STATUS_UNIQUE, b"u1") == [
        (P.STATUS_RES_UNIQUE, (b"u1", b"0", b"0", b"0", b"0", b"0"))
    ]


def test_a_claimed_job_keeps_the_handle_its_submitting_node_gave() -> None:
    talk = node()
    client = talk.connect()
    talk.send(client, P.SUBMIT_JOB_BG, b"f", b"u1", b"data")
    [add] = commit(talk)
    assert add.handle.startswith(b"H:test:")
    runner = node()
    job = runner.engine.restore(add, runner.now)
    assert job.handle == add.handle
    again = runner.engine.restore(add, runner.now)  # a handle this node already uses: a fresh one
    assert again.handle != add.handle


def test_a_foreground_job_another_node_stored_first_is_watched_and_its_result_comes_back() -> None:
    talk = node()
    with_relay(talk)
    client = talk.connect()
    talk.send(client, P.SUBMIT_JOB, b"f", b"same", b"data")
    commit(talk, elsewhere=frozenset({0}))
    assert client.take_output().startswith(b"\0RES\0\0\0\x08")  # JOB_CREATED: coalesced onto the other's job
    assert talk.engine.watch_requests == [(b"same", b"f")]  # for the cluster node to register
    assert talk.engine.watched == {(b"same", b"f")}
    [job] = talk.engine.jobs.values()
    cluster.relayed(talk.engine, b"same", b"f", P.WORK_COMPLETE, (b"done",), talk.now)
    assert talk.replies(client) == [(P.WORK_COMPLETE, (job.handle, b"done"))]
    assert talk.engine.jobs == {} and talk.engine.watched == set()
    assert talk.engine.take_store_batch() is None  # the record was never this node's


def test_a_watcher_whose_client_leaves_never_deletes_the_other_nodes_job() -> None:
    talk = node()
    relay = with_relay(talk)
    client = talk.connect()
    talk.send(client, P.SUBMIT_JOB, b"f", b"same", b"data")
    commit(talk, elsewhere=frozenset({0}))
    talk.disconnect(client)
    assert talk.engine.jobs == {} and relay.assigned == {} and talk.engine.watched == set()
    assert talk.engine.take_store_batch() is None


def test_a_watched_job_gone_from_the_store_is_submitted_again_for_its_clients() -> None:
    talk = node()
    relay = with_relay(talk)
    client = talk.connect()
    talk.send(client, P.SUBMIT_JOB, b"f", b"same", b"data")
    commit(talk, elsewhere=frozenset({0}))
    client.take_output()
    cluster.submit_again(talk.engine, b"same", b"f")
    assert relay.assigned == {} and talk.engine.watched == set()
    [add] = commit(talk)  # stored again, as this node's own waiting job
    assert (add.key, add.function, add.waiting) == (b"same", b"f", True)
    [job] = talk.engine.jobs.values()
    assert job.worker is relay and talk.engine.watched == set()
    assert client.take_output() == b""  # no second JOB_CREATED
    cluster.relayed(talk.engine, b"same", b"f", P.WORK_COMPLETE, (b"done",), talk.now)
    assert talk.replies(client) == [(P.WORK_COMPLETE, (job.handle, b"done"))]


def test_a_job_held_here_relays_its_packets_to_a_node_whose_clients_coalesced_onto_it() -> None:
    talk = node()
    worker = talk.worker(b"f")
    watcher = talk.connect("cluster:other")
    job = talk.engine.restore(StoredJob(b"u", b"f", b"u", 1, b"data"), talk.now)  # a background job, claimed
    assert cluster.held_job(talk.engine, b"u", b"f") is job
    assert cluster.held_job(talk.engine, b"other", b"f") is None
    assert cluster.watch_for(job, watcher)
    assert not cluster.watch_for(job, watcher)  # once
    talk.send(worker, P.GRAB_JOB)
    talk.replies(worker)
    talk.send(worker, P.WORK_DATA, job.handle, b"part")
    talk.send(worker, P.WORK_COMPLETE, job.handle, b"done")
    assert talk.replies(watcher) == [(P.WORK_DATA, (job.handle, b"part")), (P.WORK_COMPLETE, (job.handle, b"done"))]


def test_a_job_claimed_back_before_its_commit_is_heard_stays_one_job_under_its_handle() -> None:
    """The claim's database connection can see a new row before this node hears its own commit: the claim returns
    the node's pending job itself, which is queued here at the commit (not a second job under a new handle)."""
    talk = node()
    worker, client = talk.worker(b"f"), talk.connect()
    talk.send(client, P.SUBMIT_JOB_BG, b"f", b"u1", b"data")
    batch = talk.engine.take_store_batch()
    assert batch is not None
    [add] = batch.adds
    [pending] = talk.engine.jobs.values()
    claimed = StoredJob(add.key, add.function, add.unique, add.priority, add.data, handle=pending.handle)
    assert talk.engine.restore(claimed, talk.now) is pending
    assert list(talk.engine.jobs) == [pending.handle]
    talk.engine.store_committed(batch, talk.now)
    assert acknowledged(client)
    reply = talk.grab(worker)
    assert reply[0] == P.JOB_ASSIGN and reply[1][0] == pending.handle
    assert talk.grab(worker) == (P.NO_JOB, ())
    assert not talk.engine.claimed_back
