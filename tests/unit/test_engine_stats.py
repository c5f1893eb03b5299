"""Per-function stats: each counter moves exactly at its event; durations come from the conversation's clock."""

from __future__ import annotations

import bisect
import json
import math
import random

from conversation import T0, Conversation

from geartrain.protocol.admin import AdminCommand, parse
from geartrain.protocol.packets import PacketType
from geartrain.server.core import operations
from geartrain.server.core.config import EngineConfig
from geartrain.server.core.stats import DURATION_BUCKETS, FunctionStats, Histogram, bucket

P = PacketType


def stats(conv: Conversation, name: bytes = b"f") -> FunctionStats:
    return conv.engine.stats.functions[name]


def test_submits_count_by_priority_and_kind_and_coalesced_ones_apart(conv: Conversation) -> None:
    client = conv.connect()
    conv.submit(client, b"f", b"u1", b"a", P.SUBMIT_JOB_HIGH)
    conv.submit(client, b"f", b"u2", b"b", P.SUBMIT_JOB_LOW_BG)
    conv.submit(client, b"f", b"u3", b"c", P.SUBMIT_JOB_BG)
    conv.submit(client, b"f", b"u3", b"c", P.SUBMIT_JOB_BG)  # same unique: attached, no new job
    conv.submit(client, b"f", b"u1", b"a", P.SUBMIT_JOB)
    s = stats(conv)
    # index = priority * 2 + background; priorities 0 high, 1 normal, 2 low
    assert s.submitted == [1, 0, 0, 1, 0, 1]
    assert s.coalesced == 2
    assert s.submitted_total == 3


def test_maxqueue_refusals_are_counted(conv: Conversation) -> None:
    client, admin = conv.connect(), conv.connect()
    conv.engine.function(b"f")
    assert conv.admin(admin, b"maxqueue f 1") == b"OK\r\n"
    conv.submit(client, b"f", b"", b"one", P.SUBMIT_JOB_BG)
    assert conv.ask(client, P.SUBMIT_JOB_BG, b"f", b"", b"two")[0][0] == P.ERROR
    assert stats(conv).rejected == 1
    assert stats(conv).submitted_total == 1


def test_queue_wait_and_run_time_use_the_engine_clock(conv: Conversation) -> None:
    client = conv.connect()
    handle = conv.submit(client, b"f", b"", b"x")
    worker = conv.worker(b"f")
    conv.now = T0 + 2.0
    assert conv.grab_handle(worker) == handle
    conv.now = T0 + 2.0 + 0.25
    conv.send(worker, P.WORK_COMPLETE, handle, b"done")
    s = stats(conv)
    assert (s.queue_wait.count, s.queue_wait.sum) == (1, 2.0)
    assert (s.run_time.count, s.run_time.sum) == (1, 0.25)
    assert s.completed == 1 and s.failed == 0 and s.exceptions == 0
    assert dict(s.queue_wait.cumulative())["1.0"] == 0
    assert dict(s.queue_wait.cumulative())["5.0"] == 1
    assert dict(s.run_time.cumulative())["0.1"] == 0
    assert dict(s.run_time.cumulative())["0.5"] == 1


def test_fail_and_exception_are_counted_with_their_run_time(conv: Conversation) -> None:
    client = conv.connect()
    first = conv.submit(client, b"f", b"", b"1")
    second = conv.submit(client, b"f", b"", b"2")
    worker = conv.worker(b"f")
    assert conv.grab_handle(worker) == first
    conv.send(worker, P.WORK_FAIL, first)
    assert conv.grab_handle(worker) == second
    conv.now += 3
    conv.send(worker, P.WORK_EXCEPTION, second, b"boom")
    s = stats(conv)
    assert (s.completed, s.failed, s.exceptions) == (0, 1, 1)
    assert s.run_time.count == 2 and s.run_time.sum == 3.0


def test_requeue_counts_and_the_wait_restarts_at_the_requeue() -> None:
    conv = Conversation(EngineConfig(handle_prefix=b"H:test", job_retries=2))
    client = conv.connect()
    handle = conv.submit(client, b"f", b"", b"x", P.SUBMIT_JOB_BG)
    worker = conv.worker(b"f")
    conv.now = T0 + 1
    conv.grab_handle(worker)
    conv.now = T0 + 10
    conv.disconnect(worker)  # first loss: requeued
    assert stats(conv).requeued == 1
    worker = conv.worker(b"f")
    conv.now = T0 + 10.5
    assert conv.grab_handle(worker) == handle
    assert stats(conv).queue_wait.sum == 1.0 + 0.5  # 1 s before the first grab, 0.5 s after the requeue
    conv.disconnect(worker)  # second loss reaches --job-retries 2: dropped
    assert (stats(conv).requeued, stats(conv).dropped) == (1, 1)
    assert handle not in conv.engine.jobs


def test_counters_survive_drop_function_and_recreation(conv: Conversation) -> None:
    client, admin = conv.connect(), conv.connect()
    handle = conv.submit(client, b"f", b"", b"x")
    worker = conv.worker(b"f")
    conv.grab_handle(worker)
    conv.send(worker, P.WORK_COMPLETE, handle, b"")
    conv.replies(client)
    conv.disconnect(worker)
    assert conv.admin(admin, b"drop function f") == b"OK\r\n"
    conv.submit(client, b"f", b"", b"again", P.SUBMIT_JOB_BG)
    assert stats(conv).submitted_total == 2 and stats(conv).completed == 1


def test_histogram_buckets_are_cumulative_and_end_with_inf() -> None:
    histogram = Histogram()
    for value in (0.0005, 0.001, 0.002, 7.0, 1000.0, -1.0):  # -1: the clock stepped back
        histogram.observe(value)
    rows = histogram.cumulative()
    assert [le for le, _ in rows] == [repr(b) for b in DURATION_BUCKETS] + ["+Inf"]
    counts = dict(rows)
    assert counts["0.001"] == 3  # -1 (clock stepped back) counts as 0; 0.001 is inclusive
    assert counts["0.005"] == 4 and counts["10.0"] == 5 and counts["+Inf"] == 6 == histogram.count


def test_purge_cancels_queued_jobs_and_empties_the_queue(conv: Conversation) -> None:
    client, admin = conv.connect(), conv.connect()
    waiting = conv.submit(client, b"f", b"", b"fg")
    conv.submit(client, b"f", b"", b"bg", P.SUBMIT_JOB_BG)
    conv.submit(client, b"f", b"", b"bg-low", P.SUBMIT_JOB_LOW_BG)
    worker = conv.worker(b"f")
    running = conv.grab_handle(worker)
    assert running == waiting
    conv.submit(client, b"f", b"", b"later")  # a foreground job left queued: its client hears WORK_FAIL
    assert operations.purge(conv.engine, b"f") == 3
    assert conv.admin(admin, b"status") == b"f\t1\t1\t1\n.\n"  # only the running job is left
    replies = conv.replies(client)
    assert [r[0] for r in replies] == [P.WORK_FAIL]
    assert operations.purge(conv.engine, b"nope") is None
    assert conv.grab(worker)[0] == P.NO_JOB


def test_set_max_queue_needs_an_existing_function(conv: Conversation) -> None:
    conv.engine.function(b"f")
    assert operations.set_max_queue(conv.engine, b"f", [3, 2, -1])
    assert conv.engine.functions[b"f"].max_queue == [3, 2, 0]
    assert not operations.set_max_queue(conv.engine, b"g", [1, 1, 1])


def test_json_admin_commands_parse_and_gearmand_commands_are_unchanged() -> None:
    assert parse(b"status json") == AdminCommand("status json")
    assert parse(b"STATUS JSON") == AdminCommand("status json")
    assert parse(b"workers json") == AdminCommand("workers json")
    assert parse(b"show jobs json") == AdminCommand("show jobs json")
    assert parse(b"status") == AdminCommand("status")
    assert parse(b"status extra") == AdminCommand("status")  # gearmand ignores extra words
    assert parse(b"version json") == AdminCommand("version")


def test_status_json_reports_the_same_counts_as_status(conv: Conversation) -> None:
    client, admin = conv.connect(), conv.connect()
    conv.submit(client, b"f", b"", b"1", P.SUBMIT_JOB_HIGH_BG)
    conv.submit(client, b"f", b"", b"2", P.SUBMIT_JOB_BG)
    conv.worker(b"f", b"g")
    reply = conv.admin(admin, b"status json")
    assert reply.endswith(b"\n") and reply.count(b"\n") == 1
    data = json.loads(reply)
    rows = {f["name"]: f for f in data["functions"]}
    assert rows["f"]["queued"] == {"high": 1, "normal": 1, "low": 0}
    assert (rows["f"]["total"], rows["f"]["workers"], rows["f"]["submitted"]) == (2, 1, 2)
    assert rows["g"]["total"] == 0 and data["totals"]["queued"] == 2
    workers = json.loads(conv.admin(admin, b"workers json"))["workers"]
    assert [w["functions"] for w in workers] == [["g", "f"]]
    jobs = json.loads(conv.admin(admin, b"show jobs json"))
    assert jobs["total"] == 2 and {j["priority"] for j in jobs["jobs"]} == {"high", "normal"}


def test_a_histograms_bucket_is_bisect_lefts() -> None:
    rng = random.Random(7)
    values = [*DURATION_BUCKETS, 0.0, -1.0, math.inf, -math.inf, math.nan, 1e-9, 1e9]
    values += [rng.uniform(0, 400) for _ in range(300)] + [rng.expovariate(100) for _ in range(300)]
    for bounds in (DURATION_BUCKETS, (), (1.0,), (1.0, 1.0, 2.0)):
        for value in values:
            assert bucket(bounds, value) == bisect.bisect_left(bounds, value), (bounds, value)
