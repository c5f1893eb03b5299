"""What an operator sees must be true (issue 16): counters that add up after a replay or a dead-job retry, queue
columns that add up, a cancelled job's real kind, an HTTP job dropped when its request hangs up, and the
per-function, per-worker and per-job views built on demand from the engine's state."""

from __future__ import annotations

from conversation import NO_JOB, T0, Conversation, P
from test_lifecycle_engine import talk_with

from geartrain.server.core.records import StoredJob
from geartrain.server.core.snapshot import function_view, job_detail, jobs_view, totals_view, workers_view
from geartrain.server.core.state import GHOST_SWEEP

RETRY_POLICY = """
[functions.f]
retries = 1
backoff = "fixed"
backoff_base = "10s"
"""


def with_lifecycle(policy: str = RETRY_POLICY, persistent: bool = False) -> Conversation:
    return talk_with(policy, persistent)


def view(conv: Conversation, name: bytes = b"f") -> dict[str, object]:
    return function_view(conv.engine.functions[name], conv.now)


# ---------------------------------------------------------------------------------------------- counters


def test_replayed_jobs_are_counted_apart_from_submitted_ones(conv: Conversation) -> None:
    for n in range(3):
        conv.engine.restore_record(StoredJob(b"k%d" % n, b"f", b"u%d" % n, 1, b"data"), conv.now)
    conv.engine.replay_done(conv.now)
    client, worker = conv.connect(), conv.worker(b"f")
    conv.submit(client, b"f", b"", b"new", P.SUBMIT_JOB_BG)
    for _ in range(4):
        conv.send(worker, P.WORK_COMPLETE, conv.grab_handle(worker), b"")
    shown = view(conv)
    assert (shown["submitted"], shown["replayed"], shown["completed"]) == (1, 3, 4)
    totals = totals_view(conv.engine)
    assert totals["submitted"] + totals["replayed"] >= totals["completed"] + totals["queued"]
    assert conv.engine.stats.functions[b"f"].arrived_total == 4


def test_a_dead_job_queued_again_counts_as_revived() -> None:
    talk = with_lifecycle("[functions.f]\nretries = 0\n")
    client, worker, admin = talk.connect(), talk.worker(b"f"), talk.connect()
    handle = talk.submit(client, b"f", b"u", b"x", P.SUBMIT_JOB_BG)
    talk.send(worker, P.WORK_FAIL, talk.grab_handle(worker))
    assert talk.admin(admin, b"dead retry " + handle).startswith(b"OK")
    talk.send(worker, P.WORK_COMPLETE, talk.grab_handle(worker), b"")
    shown = view(talk)
    assert (shown["submitted"], shown["revived"], shown["dead"], shown["completed"]) == (1, 1, 1, 1)


# ---------------------------------------------------------------------------------------------- queue columns


def test_jobs_waiting_out_a_backoff_are_pending_so_the_columns_add_up() -> None:
    talk = with_lifecycle()
    client, worker = talk.connect(), talk.worker(b"f")
    handle = talk.submit(client, b"f", b"u", b"x", P.SUBMIT_JOB_BG)
    talk.submit(client, b"f", b"", b"y", P.SUBMIT_JOB_HIGH_BG)
    talk.send(worker, P.WORK_FAIL, talk.grab_handle(worker))  # the high one: its backoff starts
    shown = view(talk)
    queued = shown["queued"]
    assert isinstance(queued, dict)
    assert (shown["total"], sum(queued.values()), shown["pending"], shown["running"]) == (2, 1, 1, 0)
    listed = {job["handle"]: job["state"] for job in jobs_view(talk.engine, talk.now)["jobs"]}
    assert listed[handle.decode()] == "queued" and sorted(listed.values()) == ["queued", "retrying"]
    assert totals_view(talk.engine)["pending"] == 1


def test_the_oldest_queued_job_is_the_longest_waiting_head(conv: Conversation) -> None:
    client = conv.connect()
    conv.submit(client, b"f", b"", b"low", P.SUBMIT_JOB_LOW_BG)
    conv.now = T0 + 5
    conv.submit(client, b"f", b"", b"high", P.SUBMIT_JOB_HIGH_BG)
    conv.now = T0 + 12.5
    assert view(conv)["oldest_queued"] == 12.5
    worker = conv.worker(b"f")
    conv.send(worker, P.WORK_COMPLETE, conv.grab_handle(worker), b"")  # the high one
    conv.send(worker, P.WORK_COMPLETE, conv.grab_handle(worker), b"")
    assert view(conv)["oldest_queued"] is None
    assert function_view(conv.engine.functions[b"f"])["oldest_queued"] is None  # no clock: not computed


# ---------------------------------------------------------------------------------------------- cancel


def test_a_cancelled_background_job_keeps_its_kind_and_is_neither_retried_nor_kept() -> None:
    talk = with_lifecycle(RETRY_POLICY + 'result_ttl = "1h"\n')
    client, worker, admin = talk.connect(), talk.worker(b"f"), talk.connect()
    queued = talk.submit(client, b"f", b"q", b"x", P.SUBMIT_JOB_BG)
    assert talk.admin(admin, b"cancel job " + queued) == b"OK\r\n"
    [listed] = jobs_view(talk.engine, talk.now)["jobs"]
    assert (listed["background"], listed["state"]) == (True, "cancelled")
    assert talk.admin(admin, b"show jobs") == queued + b"\t0\t1\t0\n.\n"  # gearmand's columns unchanged
    assert talk.grab(worker) == NO_JOB

    running = talk.submit(client, b"f", b"r", b"x", P.SUBMIT_JOB_BG)
    assert talk.grab_handle(worker) == running
    assert talk.admin(admin, b"cancel job " + running) == b"OK\r\n"
    talk.send(worker, P.WORK_FAIL, running)  # not retried: nobody wants it
    assert talk.engine.jobs == {} and talk.grab(worker) == NO_JOB
    again = talk.submit(client, b"f", b"s", b"x", P.SUBMIT_JOB_BG)
    assert talk.grab_handle(worker) == again
    assert talk.admin(admin, b"cancel job " + again) == b"OK\r\n"
    talk.send(worker, P.WORK_COMPLETE, again, b"done")
    lifecycle = talk.engine.lifecycle
    assert lifecycle is not None and lifecycle.result(again, talk.now) is None  # no result kept for it


# ---------------------------------------------------------------------------------------------- HTTP hang-ups


def test_a_queued_job_whose_http_request_hung_up_is_dropped_at_once(conv: Conversation) -> None:
    http, other, admin = conv.connect("http:127.0.0.1"), conv.connect(), conv.connect()
    kept = conv.submit(other, b"f", b"", b"first")
    dropped = conv.submit(http, b"f", b"", b"mine")
    shared = conv.submit(http, b"f", b"s", b"shared")
    assert conv.submit(other, b"f", b"s", b"shared") == shared  # coalesced: another client waits for it too
    conv.engine.disconnect(http, conv.now, drop_abandoned=True)
    assert dropped not in conv.engine.jobs and view(conv)["abandoned"] == 1
    assert conv.admin(admin, b"status") == b"f\t2\t0\t0\n.\n"
    worker = conv.worker(b"f")
    assert conv.grab_handle(worker) == kept
    assert conv.grab_handle(worker) == shared
    assert conv.grab(worker) == NO_JOB


def test_a_dropped_job_in_the_middle_of_its_queue_is_skipped_and_ghosts_are_swept(conv: Conversation) -> None:
    http, other, admin = conv.connect("http:127.0.0.1"), conv.connect(), conv.connect()
    first = conv.submit(other, b"f", b"", b"a")
    conv.submit(http, b"f", b"", b"b")
    last = conv.submit(other, b"f", b"", b"c")
    conv.engine.disconnect(http, conv.now, drop_abandoned=True)
    function = conv.engine.functions[b"f"]
    assert (function.ghosts, function.queued, function.total) == (1, [0, 2, 0], 2)
    worker = conv.worker(b"f")
    assert [conv.grab_handle(worker) for _ in range(2)] == [first, last]
    for handle in (first, last):
        conv.send(worker, P.WORK_COMPLETE, handle, b"")
    assert len(conv.replies(other)) == 2
    assert (function.ghosts, function.queued, len(function.queues[1])) == (0, [0, 0, 0], 0)

    # Many hang-ups in the middle of a queue: the ghosts are swept before they outnumber the live jobs.
    clients = [conv.connect("http:127.0.0.1") for _ in range(GHOST_SWEEP * 2)]
    anchor = conv.submit(other, b"f", b"", b"anchor")
    for client in clients:
        conv.submit(client, b"f", b"", b"x")
    tail = conv.submit(other, b"f", b"", b"tail")
    for client in clients:
        conv.engine.disconnect(client, conv.now, drop_abandoned=True)
    assert len(function.queues[1]) < GHOST_SWEEP + 3 and function.queued == [0, 2, 0]
    assert conv.admin(admin, b"status") == b"f\t2\t0\t1\n.\n"
    assert [conv.grab_handle(worker) for _ in range(2)] == [anchor, tail]
    assert conv.grab(worker) == NO_JOB and function.queued == [0, 0, 0] and function.ghosts == 0


def test_a_purge_passes_over_ghosts(conv: Conversation) -> None:
    from geartrain.server.core import operations

    http, other = conv.connect("http:127.0.0.1"), conv.connect()
    conv.submit(other, b"f", b"", b"a")
    conv.submit(http, b"f", b"", b"b")
    conv.submit(other, b"f", b"", b"c")
    conv.engine.disconnect(http, conv.now, drop_abandoned=True)
    assert operations.purge(conv.engine, b"f") == 2
    function = conv.engine.functions[b"f"]
    assert (function.queued, function.total, function.ghosts, conv.engine.jobs) == ([0, 0, 0], 0, 0, {})


def test_gearman_clients_keep_gearmands_way(conv: Conversation) -> None:
    client, admin = conv.connect(), conv.connect()
    conv.submit(client, b"f", b"", b"x")
    conv.disconnect(client)
    assert conv.admin(admin, b"status") == b"f\t1\t0\t0\n.\n"  # counted until a worker skips it


# ---------------------------------------------------------------------------------------------- workers, jobs


def test_workers_show_their_port_connection_time_and_jobs_done(conv: Conversation) -> None:
    worker = conv.engine.connect(12, "10.0.0.7", 41234, T0 - 60)
    conv.send(worker, P.SET_CLIENT_ID, b"resizer-1")
    conv.send(worker, P.CAN_DO, b"f")
    client = conv.connect()
    for n in range(3):
        conv.submit(client, b"f", b"", b"%d" % n, P.SUBMIT_JOB_BG)
    conv.replies(worker)
    conv.send(worker, P.WORK_COMPLETE, conv.grab_handle(worker), b"")
    conv.send(worker, P.WORK_FAIL, conv.grab_handle(worker))
    conv.grab_handle(worker)
    [shown] = workers_view(conv.engine)
    assert shown["address"] == "10.0.0.7" and shown["port"] == 41234 and shown["client_id"] == "resizer-1"
    assert (shown["jobs_done"], shown["connected"], len(shown["running"])) == (2, T0 - 60, 1)


def test_a_jobs_detail_has_its_payload_worker_failure_and_history() -> None:
    talk = with_lifecycle()
    client, worker = talk.connect(), talk.worker(b"f")
    handle = talk.submit(client, b"f", b"u", b"resize me " + b"x" * 2000, P.SUBMIT_JOB_BG)
    talk.now = T0 + 1
    talk.send(worker, P.WORK_EXCEPTION, talk.grab_handle(worker), b"disk full")
    talk.now = T0 + 2
    job = talk.engine.jobs[handle]
    detail = job_detail(talk.engine, job, talk.now)
    payload = detail["payload"]
    assert payload["preview"].startswith("resize me xx") and payload["truncated"] and not payload["binary"]
    assert (detail["state"], detail["attempts"], detail["error"], detail["background"]) == (
        "retrying",
        1,
        "disk full",
        True,
    )
    assert [event["event"] for event in detail["history"]] == [
        "created",
        "first failed attempt",
        "attempt 1 failed: disk full",
        "retry due",
    ]
    talk.tick(T0 + 12)
    talk.grab_handle(worker)
    detail = job_detail(talk.engine, job, talk.now)
    assert detail["state"] == "running" and detail["history"][-1]["event"] == f"handed to worker {worker.id}"
    assert detail["worker_detail"]["id"] == worker.id
    cut = talk.engine.jobs[talk.submit(client, b"g", b"", b"x" * 1023 + "é".encode(), P.SUBMIT_JOB_BG)]
    assert job_detail(talk.engine, cut, talk.now)["payload"]["binary"] is False  # text cut inside a character
    binary = talk.engine.jobs[talk.submit(client, b"g", b"", b"\x00\xff\x10", P.SUBMIT_JOB_BG)]
    assert job_detail(talk.engine, binary, talk.now)["payload"] == {
        "preview": "\\x00\\xff\\x10",
        "truncated": False,
        "binary": True,
    }
