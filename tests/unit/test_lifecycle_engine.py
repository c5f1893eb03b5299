"""The job life cycle in the engine (issue 15), without a server: retries with backoff, the dead set and its admin
commands, policy timeouts with WORK_STATUS heartbeats, pause and resume, and the records a store keeps of them."""

from __future__ import annotations

import json
from collections.abc import Callable

from conversation import NO_JOB, Conversation, P

from geartrain.lifecycle.policy import parse_policies
from geartrain.server.core.config import EngineConfig
from geartrain.server.core.lifecycle import DEAD_PREFIX, PAUSED_FUNCTION, Lifecycle, dead_from_record
from geartrain.server.core.records import Removal, StoredJob
from geartrain.server.core.snapshot import jobs_view

POLICY = """
[functions.f]
retries = 2
backoff = "fixed"
backoff_base = "10s"
timeout = "30s"
"""


def talk_with(policy: str = POLICY, persistent: bool = False) -> Conversation:
    talk = Conversation(EngineConfig(handle_prefix=b"H:test", persistent=persistent))
    talk.engine.lifecycle = Lifecycle(talk.engine, parse_policies(policy))
    return talk


def fail_next(talk: Conversation, worker: object, how: int = P.WORK_FAIL) -> bytes:
    handle = talk.grab_handle(worker)  # type: ignore[arg-type]
    args = (handle, b"boom") if how == P.WORK_EXCEPTION else (handle,)
    talk.send(worker, how, *args)  # type: ignore[arg-type]
    return handle


def test_a_failed_background_job_waits_out_its_backoff_then_runs_again_under_its_handle() -> None:
    talk = talk_with()
    client, worker = talk.connect(), talk.worker(b"f")
    handle = talk.submit(client, b"f", b"u", b"data", P.SUBMIT_JOB_BG)
    assert fail_next(talk, worker) == handle
    assert talk.grab(worker) == NO_JOB  # waiting out its backoff (10 s)
    assert talk.ask(client, P.GET_STATUS, handle) == [(P.STATUS_RES, (handle, b"1", b"0", b"0", b"0"))]
    [listed] = jobs_view(talk.engine, talk.now, limit=10)["jobs"]
    assert listed["attempts"] == 1  # the HTTP API and `show jobs json` count its failed attempt
    talk.tick(talk.now + 9.9)
    assert talk.grab(worker) == NO_JOB
    talk.tick(talk.now + 0.2)
    assert talk.grab_handle(worker) == handle  # the same handle, the same job
    talk.send(worker, P.WORK_COMPLETE, handle, b"ok")
    assert talk.engine.jobs == {} and talk.engine.lifecycle is not None and not talk.engine.lifecycle.failures


def test_out_of_retries_a_job_is_dead_with_its_last_error_and_can_be_retried_or_deleted() -> None:
    talk = talk_with()
    client, worker, admin = talk.connect(), talk.worker(b"f"), talk.connect()
    handle = talk.submit(client, b"f", b"u", b"data", P.SUBMIT_JOB_BG)
    fail_next(talk, worker)
    for _ in range(2):
        talk.tick(talk.now + 10)
        fail_next(talk, worker, P.WORK_EXCEPTION)
    assert talk.engine.jobs == {}  # out of the queues
    listed = talk.admin(admin, b"dead list").split(b"\n")
    assert listed[0].split(b"\t")[:4] == [handle, b"f", b"u", b"3"] and listed[0].endswith(b"\tboom")
    assert listed[1:] == [b".", b""]
    shown = json.loads(talk.admin(admin, b"dead show " + handle))
    assert (shown["attempts"], shown["error"], shown["data"]) == (3, "boom", "data")
    assert talk.admin(admin, b"dead list g") == b".\n"
    assert talk.admin(admin, b"dead retry f") == b"OK 1\n"
    assert talk.grab_handle(worker) == handle  # queued again, its attempts starting over
    assert talk.admin(admin, b"dead list") == b".\n"
    talk.send(worker, P.WORK_EXCEPTION, handle, b"again")
    assert talk.engine.lifecycle is not None and talk.engine.lifecycle.attempts(talk.engine.jobs[handle]) == 1


def test_a_foreground_client_sees_what_it_always_saw() -> None:
    talk = talk_with()
    client, worker = talk.connect(), talk.worker(b"f")
    handle = talk.submit(client, b"f", b"u", b"data")
    fail_next(talk, worker)
    assert talk.replies(client) == [(P.WORK_FAIL, (handle,))]  # foreground jobs are not retried
    assert talk.engine.jobs == {}


def test_a_disconnected_worker_or_a_timeout_counts_as_a_failed_attempt() -> None:
    talk = talk_with()
    client, worker = talk.connect(), talk.worker(b"f")
    handle = talk.submit(client, b"f", b"u", b"data", P.SUBMIT_JOB_BG)
    assert talk.grab_handle(worker) == handle
    talk.disconnect(worker)
    lifecycle = talk.engine.lifecycle
    assert lifecycle is not None and lifecycle.attempts(talk.engine.jobs[handle]) == 1
    talk.tick(talk.now + 10)
    worker = talk.worker(b"f")
    assert talk.grab_handle(worker) == handle
    talk.tick(talk.now + 20)
    talk.send(worker, P.WORK_STATUS, handle, b"1", b"2")  # a heartbeat: 30 s from now again
    talk.tick(talk.now + 29)
    assert talk.engine.jobs[handle].worker is worker
    talk.tick(talk.now + 2)  # timed out: the second failure
    assert talk.engine.jobs[handle].worker is None and lifecycle.attempts(talk.engine.jobs[handle]) == 2
    talk.send(worker, P.WORK_COMPLETE, handle, b"late")  # taken back: its worker's late result is refused
    [(ptype, (code, _))] = talk.replies(worker)
    assert (ptype, code) == (P.ERROR, b"JOB_NOT_FOUND")
    assert handle in talk.engine.jobs  # and the job waits for its retry


def test_a_paused_function_takes_submits_and_hands_out_nothing_until_resumed() -> None:
    talk = talk_with()
    client, worker, admin = talk.connect(), talk.worker(b"f"), talk.connect()
    assert talk.admin(admin, b"pause f") == b"OK\r\n"
    handle = talk.submit(client, b"f", b"u", b"data", P.SUBMIT_JOB_BG)
    assert talk.grab(worker) == NO_JOB
    talk.send(worker, P.PRE_SLEEP)
    assert talk.replies(worker) == []  # not woken either
    assert talk.admin(admin, b"paused") == b"f\n.\n"
    assert talk.admin(admin, b"resume f") == b"OK\r\n"
    assert talk.replies(worker) == [(P.NOOP, ())]
    assert talk.grab_handle(worker) == handle


def test_without_a_policy_file_the_commands_say_so() -> None:
    talk = Conversation()
    admin = talk.connect()
    assert talk.admin(admin, b"dead list").startswith(b"ERR NO_POLICY_FILE ")
    assert talk.admin(admin, b"pause f").startswith(b"ERR NO_POLICY_FILE ")


def test_dead_jobs_and_pauses_are_store_records_that_replay() -> None:
    policy = "[defaults]\nretries = 0\n"
    talk = talk_with(policy, persistent=True)
    client, worker, admin = talk.connect(), talk.worker(b"f"), talk.connect()
    talk.send(client, P.SUBMIT_JOB_BG, b"f", b"u", b"data")
    batch = talk.engine.take_store_batch()
    assert batch is not None
    talk.engine.store_committed(batch, talk.now)
    handle = fail_next(talk, worker)
    talk.admin(admin, b"pause g")
    batch = talk.engine.take_store_batch()
    assert batch is not None
    assert batch.removes == [Removal(b"u", b"f")]  # the live record goes, in the same batch as the dead one
    [dead_record, pause_record] = batch.adds
    assert (dead_record.key, dead_record.function) == (b"u", DEAD_PREFIX + b"f")
    assert (pause_record.key, pause_record.function) == (b"g", PAUSED_FUNCTION)
    dead = dead_from_record(dead_record)
    assert dead is not None and (dead.handle, dead.data, dead.error) == (handle, b"data", b"WORK_FAIL")
    talk.engine.store_committed(batch, talk.now)
    # A new engine replays them.
    again = talk_with(policy, persistent=True)
    for record in batch.adds:
        again.engine.restore_record(record, again.now)
    lifecycle = again.engine.lifecycle
    assert lifecycle is not None and list(lifecycle.dead) == [handle] and lifecycle.paused == {b"g"}
    assert again.engine.jobs == {} and again.engine.functions[b"g"].paused
    assert again.admin(again.connect(), b"dead delete all") == b"OK 1\n"
    batch = again.engine.take_store_batch()
    assert batch is not None and batch.removes == [Removal(b"u", DEAD_PREFIX + b"f")]


def test_replayed_dead_jobs_keep_their_handles_from_new_jobs_and_replayed_ones() -> None:
    """After a restart the handle counter starts at 1 again: a new job that died under an old dead job's handle
    would replace it in the dead set (and a kept result's record in the store)."""
    policy = "[defaults]\nretries = 0\n"
    talk = talk_with(policy, persistent=True)
    client, worker = talk.connect(), talk.worker(b"f")
    for n in range(3):
        talk.send(client, P.SUBMIT_JOB_BG, b"f", b"u%d" % n, b"data")
    batch = talk.engine.take_store_batch()
    assert batch is not None
    talk.engine.store_committed(batch, talk.now)
    client.take_output()  # the JOB_CREATEDs
    for _ in range(2):
        talk.grab_handle(worker)
    handle = fail_next(talk, worker)  # the third job, H:test:3, dies
    batch = talk.engine.take_store_batch()
    assert batch is not None
    [dead_record] = batch.adds
    # A new engine replays a queued job (which takes H:test:1), the dead one, another queued job.
    again = talk_with(policy, persistent=True)
    queued = [StoredJob(b"q%d" % n, b"f", b"q%d" % n, 1, b"data") for n in range(3)]
    for record in [*queued[:2], dead_record, queued[2]]:
        again.engine.restore_record(record, again.now)
    assert handle == b"H:test:3"
    again.engine.replay_done(again.now)
    assert handle not in again.engine.jobs and len(again.engine.jobs) == 3  # the replayed job that had it moved
    new = again.submit(again.connect(), b"f", b"", b"new")  # foreground: answered at once
    assert new not in {handle, *again.engine.jobs.keys() - {new}}
    lifecycle = again.engine.lifecycle
    assert lifecycle is not None and list(lifecycle.dead) == [handle]


CRON = """
[[cron]]
function = "report"
schedule = "@every 10s"
payload = "daily"
catch_up = "once"
"""


def test_a_cron_entry_submits_a_background_job_at_each_firing_and_stores_when_it_last_fired() -> None:
    talk = talk_with(CRON, persistent=True)
    lifecycle = talk.engine.lifecycle
    assert lifecycle is not None
    start = (int(talk.now) // 10 + 1) * 10  # @every is aligned to the epoch
    lifecycle.arm_cron(talk.now)
    assert talk.engine.next_deadline() == start
    talk.tick(start - 0.5)
    assert talk.engine.take_store_batch() is None  # not yet
    talk.tick(start)
    batch = talk.engine.take_store_batch()
    assert batch is not None
    [job_record, fired] = batch.adds
    assert (job_record.function, job_record.key, job_record.data) == (
        b"report",
        f"cron:report:{start}".encode(),
        b"daily",
    )
    assert (fired.key, fired.data) == (b"report|@every 10s", repr(float(start)).encode())
    talk.engine.store_committed(batch, talk.now)
    assert [job.unique for job in talk.engine.jobs.values()] == [f"cron:report:{start}".encode()]
    admin = talk.connect()
    row = talk.admin(admin, b"cron list").split(b"\n")[0].split(b"\t")
    assert row == [b"report", b"@every 10s", b"UTC", str(start + 10).encode(), str(start).encode()]
    # Restarted 35 s later: the record says when it last fired; catch_up = "once" fires one missed run at once.
    again = talk_with(CRON, persistent=True)
    again.engine.restore_record(fired, again.now)
    again_lifecycle = again.engine.lifecycle
    assert again_lifecycle is not None
    again.now = start + 35
    again_lifecycle.arm_cron(again.now)
    again.tick(again.now)
    batch = again.engine.take_store_batch()
    assert batch is not None and batch.adds[0].key == f"cron:report:{start + 10}".encode()  # the first one missed
    assert again.engine.next_deadline() == start + 40  # then on schedule, not every missed one


def test_a_functions_concurrency_holds_back_jobs_until_a_running_one_ends() -> None:
    talk = talk_with("[functions.f]\nconcurrency = 1\n")
    client, first, second = talk.connect(), talk.worker(b"f"), talk.worker(b"f")
    handles = [talk.submit(client, b"f", unique, b"data", P.SUBMIT_JOB_BG) for unique in (b"a", b"b")]
    assert talk.grab_handle(first) == handles[0]
    assert talk.grab(second) == NO_JOB  # one at a time
    talk.send(second, P.PRE_SLEEP)
    talk.send(first, P.WORK_COMPLETE, handles[0], b"")
    assert talk.replies(second) == [(P.NOOP, ())]  # woken as the running one ended
    assert talk.grab_handle(second) == handles[1]
    talk.submit(client, b"f", b"c", b"data", P.SUBMIT_JOB_BG)
    talk.send(first, P.PRE_SLEEP)
    talk.disconnect(second)  # a failed attempt (no retries: dead) ends the running job as well
    assert talk.replies(first) == [(P.NOOP, ())]
    assert talk.grab_data(first) == b"data" and talk.engine.functions[b"f"].held  # the third, and one at a time


def test_a_reload_applies_new_limits() -> None:
    talk = talk_with("[functions.f]\nconcurrency = 1\n")
    client, first, second = talk.connect(), talk.worker(b"f"), talk.worker(b"f")
    for unique in (b"a", b"b"):
        talk.submit(client, b"f", unique, b"data", P.SUBMIT_JOB_BG)
    talk.grab_handle(first)
    assert talk.grab(second) == NO_JOB
    talk.send(second, P.PRE_SLEEP)
    lifecycle = talk.engine.lifecycle
    assert lifecycle is not None
    lifecycle.reload(parse_policies("[functions.f]\nconcurrency = 2\n"), talk.now)
    assert talk.replies(second) == [(P.NOOP, ())]


def test_a_functions_rate_lets_a_burst_through_then_one_start_per_token() -> None:
    talk = talk_with('[functions.f]\nrate = "2/s"\n')
    client, worker = talk.connect(), talk.worker(b"f")
    for unique in (b"a", b"b", b"c", b"d"):
        talk.submit(client, b"f", unique, b"data", P.SUBMIT_JOB_BG)
    for _ in range(2):  # a burst of two: the bucket holds two tokens
        handle = talk.grab_handle(worker)
        talk.send(worker, P.WORK_COMPLETE, handle, b"")
    assert talk.grab(worker) == NO_JOB  # out of tokens
    talk.send(worker, P.PRE_SLEEP)
    deadline = talk.engine.next_deadline()
    assert deadline is not None and abs(deadline - (talk.now + 0.5)) < 1e-6  # one token every half second
    talk.tick(deadline)
    assert talk.replies(worker) == [(P.NOOP, ())]
    handle = talk.grab_handle(worker)
    talk.send(worker, P.WORK_COMPLETE, handle, b"")
    assert talk.grab(worker) == NO_JOB  # that token is spent


def test_a_kept_result_answers_get_status_until_it_expires_and_is_a_store_record() -> None:
    talk = talk_with('[functions.f]\nresult_ttl = "60s"\n', persistent=True)
    client, worker, admin = talk.connect(), talk.worker(b"f"), talk.connect()
    talk.send(client, P.SUBMIT_JOB_BG, b"f", b"u", b"data")
    batch = talk.engine.take_store_batch()
    assert batch is not None
    talk.engine.store_committed(batch, talk.now)
    handle = client.take_output()[12:]
    talk.send(worker, P.GRAB_JOB)
    talk.replies(worker)
    talk.send(worker, P.WORK_COMPLETE, handle, b"the result")
    batch = talk.engine.take_store_batch()
    assert batch is not None and batch.removes == [Removal(b"u", b"f")]
    [record] = batch.adds
    assert (record.key, record.function) == (handle, b"gt:result:f")
    talk.engine.store_committed(batch, talk.now)
    assert talk.ask(client, P.GET_STATUS, handle) == [(P.STATUS_RES, (handle, b"1", b"0", b"1", b"1"))]
    kept = json.loads(talk.admin(admin, b"result " + handle))
    assert (kept["status"], kept["data"]) == ("complete", "the result")
    again = talk_with('[functions.f]\nresult_ttl = "60s"\n', persistent=True)  # replayed
    again.engine.restore_record(record, again.now)
    assert json.loads(again.admin(again.connect(), b"result " + handle))["data"] == "the result"
    talk.tick(talk.now + 61)
    assert talk.ask(client, P.GET_STATUS, handle) == [(P.STATUS_RES, (handle, b"0", b"0", b"0", b"0"))]
    batch = talk.engine.take_store_batch()
    assert batch is not None and batch.removes == [Removal(handle, b"gt:result:f")]


def test_in_a_cluster_pauses_made_elsewhere_apply_here_and_a_recent_change_here_wins() -> None:
    from geartrain.server.core.cluster import wanted

    talk = Conversation(EngineConfig(handle_prefix=b"H:test", persistent=True, cluster=True))
    lifecycle = talk.engine.lifecycle = Lifecycle(talk.engine, parse_policies(POLICY))
    worker = talk.worker(b"f")
    talk.worker(b"g")
    talk.send(worker, P.PRE_SLEEP)
    assert set(wanted(talk.engine)) == {b"f", b"g"}
    # Another node paused f: this node holds it and claims nothing of it, and stores nothing (the record is there).
    assert lifecycle.sync_paused({b"f"}, now=100.0, settle=3.0) == ([b"f"], [])
    assert lifecycle.paused == {b"f"} and set(wanted(talk.engine)) == {b"g"}
    assert talk.engine.take_store_batch() is None
    # Resumed elsewhere: claimed again (the node then claims at once, cluster/node.py).
    assert lifecycle.sync_paused(set(), now=101.0, settle=3.0) == ([], [b"f"])
    assert set(wanted(talk.engine)) == {b"f", b"g"}
    # Paused here a moment ago: a read of the list from before that change does not undo it, a later one may.
    assert lifecycle.pause(b"g", now=200.0)
    assert lifecycle.sync_paused(set(), now=201.0, settle=3.0) == ([], [])
    assert lifecycle.paused == {b"g"}
    assert lifecycle.sync_paused(set(), now=204.0, settle=3.0) == ([], [b"g"])


def test_in_a_cluster_the_dead_set_is_read_back_and_a_retry_asks_the_cluster_to_move_the_record() -> None:
    from geartrain.server.core.lifecycle import DeadJob

    talk = Conversation(EngineConfig(handle_prefix=b"H:n1", persistent=True, cluster=True))
    lifecycle = talk.engine.lifecycle = Lifecycle(talk.engine, parse_policies("[defaults]\nretries = 0\n"))
    asked: list[int] = []
    lifecycle.on_revive = lambda: asked.append(len(lifecycle.revive_requests))
    died = talk.now - 10
    elsewhere = DeadJob(b"H:n0:7", b"f", b"u7", b"data", 1, 1, died, died, b"WORK_FAIL", None, b"u7")
    # Dead on another node: listed here once read back, and nothing is stored for it.
    lifecycle.sync_dead([elsewhere], now=talk.now, settle=3.0)
    admin = talk.connect()
    assert talk.admin(admin, b"dead list") == b"H:n0:7\tf\tu7\t1\t%d\tWORK_FAIL\n.\n" % died
    assert talk.engine.take_store_batch() is None
    # A retry queues nothing here: the cluster node moves the record (once, whichever nodes ask).
    assert talk.admin(admin, b"dead retry f") == b"OK 1\n"
    assert asked == [1] and lifecycle.revive_requests == [elsewhere] and lifecycle.dead == {}
    assert talk.engine.jobs == {} and talk.engine.take_store_batch() is None
    # A read of the table from before the move does not bring it back; one after the settling time follows it.
    lifecycle.sync_dead([elsewhere], now=talk.now + 1, settle=3.0)
    assert lifecycle.dead == {}
    talk.tick(talk.now + 4)
    lifecycle.sync_dead([elsewhere], now=talk.now, settle=3.0)
    assert list(lifecycle.dead) == [b"H:n0:7"]
    # A job dead here a moment ago stays listed, after those read back, until the table shows it.
    worker = talk.worker(b"f")
    talk.engine.restore(StoredJob(b"u1", b"f", b"u1", 1, b"x"), talk.now)  # claimed from the cluster's table
    handle = fail_next(talk, worker)
    lifecycle.sync_dead([elsewhere], now=talk.now + 1, settle=3.0)
    assert list(lifecycle.dead) == [b"H:n0:7", handle]
    # Deleted here: its record goes in the next batch, and a stale read does not list it again.
    assert talk.admin(admin, b"dead delete all") == b"OK 2\n"
    batch = talk.engine.take_store_batch()
    assert batch is not None and Removal(b"u7", DEAD_PREFIX + b"f") in batch.removes
    lifecycle.sync_dead([elsewhere], now=talk.now + 2, settle=3.0)
    assert lifecycle.dead == {}


def test_in_a_cluster_a_result_kept_elsewhere_is_answered_in_its_place_once_looked_up() -> None:
    from geartrain.server.core.lifecycle import KeptResult

    talk = Conversation(EngineConfig(handle_prefix=b"H:n1", persistent=True, cluster=True))
    talk.engine.lifecycle = Lifecycle(talk.engine, parse_policies('[functions.f]\nresult_ttl = "60s"\n'))
    lookups: list[tuple[bytes, Callable[[KeptResult | None], None]]] = []
    talk.admin_commands.result_lookup = lambda handle, answer: lookups.append((handle, answer))
    admin = talk.connect()
    talk.admin_commands.run(admin, b"result H:n0:5")
    talk.admin_commands.run(admin, b"version")
    assert [handle for handle, _ in lookups] == [b"H:n0:5"]
    assert admin.take_output() == b""  # the version waits behind the result being looked up
    kept = KeptResult(b"H:n0:5", b"f", b"u", "complete", b"done", talk.now - 1, talk.now + 59)
    lookups[0][1](kept)
    first, second = admin.take_output().split(b"\n", 1)
    assert json.loads(first)["data"] == "done" and second.startswith(b"OK ")
    talk.admin_commands.run(admin, b"result H:n0:6")
    lookups[1][1](None)
    assert admin.take_output() == b"ERR UNKNOWN_JOB\r\n"


def test_in_a_cluster_a_failed_attempt_goes_to_the_store_in_the_next_batch_and_counts_on_where_it_is_claimed() -> None:
    """The node that ran a failing job records its attempts in the store batch after the failure (a side record,
    which the cluster's store writes into the job's own row); a node that claims the job later restores them, so its
    worker hears the next attempt's number."""
    from geartrain.protocol.meta import OPTION, split_meta
    from geartrain.server.core.sides import Side, side_from_record

    talk = Conversation(EngineConfig(handle_prefix=b"H:test", persistent=True, cluster=True))
    talk.engine.lifecycle = Lifecycle(talk.engine, parse_policies(POLICY))
    talk.engine.restore(StoredJob(b"u1", b"f", b"u1", 1, b"data"), talk.now)  # claimed
    worker = talk.worker(b"f")
    fail_next(talk, worker)
    batch = talk.engine.take_store_batch()
    assert batch is not None and not batch.removes
    [record] = batch.adds
    assert (record.key, record.function) == (b"u1", b"gt:job:f")
    assert side_from_record(record) == Side(b"", 1, talk.now, talk.now + 10)

    other = Conversation(EngineConfig(handle_prefix=b"H:other", persistent=True, cluster=True))
    claimer = other.engine.lifecycle = Lifecycle(other.engine, parse_policies(POLICY))
    job = other.engine.restore(StoredJob(b"u1", b"f", b"u1", 1, b"data"), other.now)
    claimer.restore_failures(job, Side(job.meta, 1, talk.now), other.now)  # as cluster/node.py does on a claim
    meta_worker = other.worker(b"f")
    assert other.ask(meta_worker, P.OPTION_REQ, OPTION)[0][0] == P.OPTION_RES
    _, (_, _, data) = other.grab(meta_worker)
    assert split_meta(data)[0].startswith(b"attempt=2")
