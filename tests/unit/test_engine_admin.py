"""Admin commands against the engine's state (reference §2, §3.11), and the engine at scale."""

from __future__ import annotations

from conversation import NO_JOB, Conversation, error

from geartrain.protocol.codec import Decoder
from geartrain.protocol.packets import AdminLine, PacketType
from geartrain.server.core.config import EngineConfig

P = PacketType
OK = b"OK\r\n"
QUEUE_FULL = error("QUEUE_ERROR", "Job queue is full")


def lines(reply: bytes) -> list[bytes]:
    """A listing's rows, sorted (row order follows gearmand's hash tables), after checking its end."""
    assert reply.endswith(b".\n"), reply
    return sorted(reply[:-2].split(b"\n")[:-1]) if reply != b".\n" else []


# ---------------------------------------------------------------------------------------------------- maxqueue


def test_maxqueue_one_refuses_the_second_job(conv: Conversation) -> None:
    client, admin = conv.connect(), conv.connect()
    assert conv.admin(admin, b"create function f") == OK
    assert conv.admin(admin, b"maxqueue f 1") == OK
    conv.submit(client, b"f", b"", b"first")
    assert conv.ask(client, P.SUBMIT_JOB, b"f", b"", b"second") == [QUEUE_FULL]
    assert conv.ask(client, P.SUBMIT_JOB_BG, b"f", b"new-unique", b"second") == [QUEUE_FULL]
    assert conv.ask(client, P.SUBMIT_JOB_EPOCH, b"f", b"", b"0", b"second") == [QUEUE_FULL]
    assert len(conv.engine.jobs) == 1
    assert conv.submit(client, b"g", b"", b"other function") == b"H:test:2"  # no handle number was spent


def test_maxqueue_counts_running_jobs(conv: Conversation) -> None:
    client, admin, worker = conv.connect(), conv.connect(), conv.worker(b"f")
    conv.submit(client, b"f", b"", b"first")
    assert conv.admin(admin, b"maxqueue f 1") == OK
    conv.grab(worker)
    assert conv.ask(client, P.SUBMIT_JOB, b"f", b"", b"second") == [QUEUE_FULL]


def test_maxqueue_reset_and_zero_mean_unlimited(conv: Conversation) -> None:
    client, admin = conv.connect(), conv.connect()
    conv.submit(client, b"f", b"", b"1")
    assert conv.admin(admin, b"maxqueue f 1") == OK
    assert conv.ask(client, P.SUBMIT_JOB, b"f", b"", b"2") == [QUEUE_FULL]
    assert conv.admin(admin, b"maxqueue f") == OK
    conv.submit(client, b"f", b"", b"2")
    assert conv.admin(admin, b"maxqueue f 0") == OK
    conv.submit(client, b"f", b"", b"3")
    assert conv.admin(admin, b"MAXQUEUE f -1") == OK
    conv.submit(client, b"f", b"", b"4")


def test_maxqueue_per_priority(conv: Conversation) -> None:
    client, admin = conv.connect(), conv.connect()
    conv.submit(client, b"f", b"", b"n1")
    assert conv.admin(admin, b"maxqueue f 3 1") == OK  # HIGH 3, NORMAL 1, LOW unlimited
    assert conv.ask(client, P.SUBMIT_JOB, b"f", b"", b"n2") == [QUEUE_FULL]
    conv.submit(client, b"f", b"", b"h1", P.SUBMIT_JOB_HIGH)
    conv.submit(client, b"f", b"", b"h2", P.SUBMIT_JOB_HIGH_BG)
    assert conv.ask(client, P.SUBMIT_JOB_HIGH, b"f", b"", b"h3") == [QUEUE_FULL]  # total is 3
    for number in range(5):
        conv.submit(client, b"f", b"", b"low%d" % number, P.SUBMIT_JOB_LOW)
    assert conv.admin(admin, b"maxqueue f 10 10 6") == OK
    # Each priority's limit is compared with the function's total (8 now), not with that priority's queue.
    assert conv.ask(client, P.SUBMIT_JOB_LOW, b"f", b"", b"low5") == [QUEUE_FULL]
    conv.submit(client, b"f", b"", b"h3", P.SUBMIT_JOB_HIGH)


def test_maxqueue_coalescing_submit_still_attaches(conv: Conversation) -> None:
    c1, c2, admin = conv.connect(), conv.connect(), conv.connect()
    handle = conv.submit(c1, b"f", b"u", b"x")
    assert conv.admin(admin, b"maxqueue f 1") == OK
    assert conv.submit(c2, b"f", b"u", b"x") == handle


def test_maxqueue_on_an_unknown_function_creates_nothing(conv: Conversation) -> None:
    client, admin = conv.connect(), conv.connect()
    assert conv.admin(admin, b"maxqueue nosuch 1") == OK
    assert conv.admin(admin, b"status") == b".\n"
    conv.submit(client, b"nosuch", b"", b"1")
    conv.submit(client, b"nosuch", b"", b"2")  # the limit was not remembered


# ---------------------------------------------------------------------------------------------------- cancel


def test_cancel_job_fails_clients_and_marks_the_job_ignored(conv: Conversation) -> None:
    c1, c2, admin = conv.connect(), conv.connect(), conv.connect()
    handle = conv.submit(c1, b"f", b"u", b"x")
    conv.submit(c2, b"f", b"u", b"x")
    other = conv.submit(c1, b"f", b"", b"other")
    assert conv.admin(admin, b"cancel job " + handle) == OK
    assert conv.replies(c1) == [(P.WORK_FAIL, (handle,))]
    assert conv.replies(c2) == [(P.WORK_FAIL, (handle,))]
    assert lines(conv.admin(admin, b"show jobs")) == sorted([handle + b"\t0\t1\t0", other + b"\t0\t0\t0"])
    assert conv.admin(admin, b"cancel job " + handle) == OK  # again: OK, and nobody hears more
    assert conv.replies(c1) == conv.replies(c2) == []
    worker = conv.worker(b"f")
    assert conv.grab(worker) == (P.JOB_ASSIGN, (other, b"f", b"other"))  # the cancelled job is skipped
    assert conv.admin(admin, b"show jobs") == other + b"\t0\t0\t0\n.\n"
    assert conv.grab(worker) == NO_JOB


def test_cancel_unknown_job(conv: Conversation) -> None:
    admin = conv.connect()
    assert conv.admin(admin, b"cancel job H:test:1") == b"ERR UNKNOWN_JOB\r\n"


def test_cancel_a_background_job(conv: Conversation) -> None:
    client, admin = conv.connect(), conv.connect()
    handle = conv.submit(client, b"f", b"", b"x", P.SUBMIT_JOB_BG)
    assert conv.admin(admin, b"show jobs") == handle + b"\t0\t0\t1\n.\n"
    assert conv.admin(admin, b"cancel job " + handle) == OK
    assert conv.admin(admin, b"show jobs") == handle + b"\t0\t1\t0\n.\n"
    assert conv.grab(conv.worker(b"f")) == NO_JOB
    assert conv.admin(admin, b"show jobs") == b".\n"


def test_cancel_a_running_job_lets_the_worker_finish_silently(conv: Conversation) -> None:
    client, admin, worker = conv.connect(), conv.connect(), conv.worker(b"f")
    handle = conv.submit(client, b"f", b"", b"x")
    conv.grab(worker)
    assert conv.admin(admin, b"cancel job " + handle) == OK
    assert conv.replies(client) == [(P.WORK_FAIL, (handle,))]
    assert conv.ask(worker, P.WORK_DATA, handle, b"d") == []
    assert conv.ask(worker, P.WORK_COMPLETE, handle, b"r") == []
    assert conv.replies(client) == []
    assert conv.engine.jobs == {}


def test_engine_cancel(conv: Conversation) -> None:
    client = conv.connect()
    handle = conv.submit(client, b"f", b"", b"x")
    assert conv.engine.cancel(handle) is True
    assert conv.engine.cancel(b"H:test:404") is False
    assert conv.replies(client) == [(P.WORK_FAIL, (handle,))]


# ---------------------------------------------------------------------------------------------------- listings


def test_status_matches_the_reference_capture(conv: Conversation) -> None:
    worker, client, admin = conv.connect(), conv.connect(), conv.connect()
    conv.send(worker, P.SET_CLIENT_ID, b"worker-1")
    conv.send(worker, P.CAN_DO, b"f1")
    conv.send(worker, P.CAN_DO, b"f2")
    conv.submit(client, b"f1", b"", b"x")
    assert conv.admin(admin, b"status") == b"f2\t0\t0\t1\nf1\t1\t0\t1\n.\n"
    assert conv.admin(admin, b"STATUS extra words") == b"f2\t0\t0\t1\nf1\t1\t0\t1\n.\n"


def test_status_counts_running_jobs_and_duplicate_registrations(conv: Conversation) -> None:
    client, admin = conv.connect(), conv.connect()
    worker = conv.worker(b"f", b"f")
    conv.submit(client, b"f", b"", b"1")
    conv.submit(client, b"f", b"", b"2")
    conv.grab(worker)
    assert conv.admin(admin, b"status") == b"f\t2\t1\t2\n.\n"
    assert conv.admin(admin, b"prioritystatus") == b"f\t0\t1\t0\t2\n.\n"


def test_prioritystatus_matches_the_reference_capture(conv: Conversation) -> None:
    client, admin = conv.connect(), conv.connect()
    assert conv.admin(admin, b"create function ba") == OK
    for number in range(3):
        conv.submit(client, b"f1", b"", b"%d" % number, P.SUBMIT_JOB_BG)
    assert conv.admin(admin, b"prioritystatus") == b"ba\t0\t0\t0\t0\nf1\t0\t3\t0\t0\n.\n"


def test_prioritystatus_per_priority(conv: Conversation) -> None:
    client, admin = conv.connect(), conv.connect()
    conv.submit(client, b"f", b"", b"", P.SUBMIT_JOB_HIGH)
    conv.submit(client, b"f", b"", b"", P.SUBMIT_JOB_LOW_BG)
    conv.submit(client, b"f", b"", b"", P.SUBMIT_JOB_LOW)
    assert conv.admin(admin, b"prioritystatus") == b"f\t1\t0\t2\t0\n.\n"


def test_functions_stay_listed_with_zero_counts(conv: Conversation) -> None:
    client, admin, worker = conv.connect(), conv.connect(), conv.worker(b"f")
    handle = conv.submit(client, b"f", b"", b"x")
    conv.grab(worker)
    conv.send(worker, P.WORK_COMPLETE, handle, b"")
    conv.disconnect(worker)
    assert conv.admin(admin, b"status") == b"f\t0\t0\t0\n.\n"


def test_workers_one_line_per_connection(conv: Conversation) -> None:
    worker = conv.connect(fd=40)
    conv.send(worker, P.SET_CLIENT_ID, b"worker-1")
    conv.send(worker, P.CAN_DO, b"f1")
    conv.send(worker, P.CAN_DO_TIMEOUT, b"f2", b"1000")
    twice = conv.connect(fd=38, address="10.0.0.7")
    conv.send(twice, P.CAN_DO, b"f")
    conv.send(twice, P.CAN_DO, b"f")
    client = conv.connect(fd=41)
    conv.submit(client, b"f1", b"", b"x")
    admin = conv.connect(fd=37)
    reply = conv.admin(admin, b"workers")
    assert lines(reply) == sorted(
        [
            b"40 127.0.0.1 worker-1 : f2 f1",  # newest registration first
            b"38 10.0.0.7 - : f f",
            b"41 127.0.0.1 - :",
            b"37 127.0.0.1 - :",  # the admin connection itself
        ]
    )


def test_workers_client_id_forms(conv: Conversation) -> None:
    long_id, empty_id = conv.connect(fd=50), conv.connect(fd=51)
    conv.send(long_id, P.SET_CLIENT_ID, b"x" * 200)
    conv.send(empty_id, P.SET_CLIENT_ID, b"")
    admin = conv.connect(fd=52)
    assert lines(conv.admin(admin, b"workers")) == [
        b"50 127.0.0.1 " + b"x" * 127 + b" :",  # gearmand keeps 127 bytes
        b"51 127.0.0.1 - :",
        b"52 127.0.0.1 - :",
    ]


def test_workers_after_cant_do_and_disconnect(conv: Conversation) -> None:
    worker = conv.connect(fd=40)
    for name in (b"a", b"b", b"c"):
        conv.send(worker, P.CAN_DO, name)
    conv.send(worker, P.CANT_DO, b"b")
    gone = conv.connect(fd=41)
    conv.disconnect(gone)
    admin = conv.connect(fd=42)
    assert lines(conv.admin(admin, b"workers")) == [b"40 127.0.0.1 - : c a", b"42 127.0.0.1 - :"]
    conv.send(worker, P.RESET_ABILITIES)
    assert lines(conv.admin(admin, b"workers")) == [b"40 127.0.0.1 - :", b"42 127.0.0.1 - :"]


def test_show_jobs_matches_the_reference_capture() -> None:
    conv = Conversation(EngineConfig(handle_prefix=b"H:vm"))
    client, admin = conv.connect(), conv.connect()
    conv.submit(client, b"f", b"u1", b"a")
    conv.submit(client, b"f", b"", b"b")
    conv.submit(client, b"f", b"", b"c", P.SUBMIT_JOB_BG)
    assert conv.admin(admin, b"show jobs") == b"H:vm:1\t0\t0\t0\nH:vm:2\t0\t0\t0\nH:vm:3\t0\t0\t1\n.\n"
    assert conv.admin(admin, b"show unique jobs") == b"\n\nu1\n.\n"


def test_show_jobs_lists_running_jobs(conv: Conversation) -> None:
    client, admin, worker = conv.connect(), conv.connect(), conv.worker(b"f")
    handle = conv.submit(client, b"f", b"", b"x")
    conv.grab(worker)
    assert conv.admin(admin, b"show jobs") == handle + b"\t0\t0\t0\n.\n"


def test_show_unique_jobs(conv: Conversation) -> None:
    client, admin = conv.connect(), conv.connect()
    assert conv.admin(admin, b"show unique jobs") == b".\n"
    conv.submit(client, b"f", b"alpha", b"x")
    conv.submit(client, b"g", b"beta", b"x", P.SUBMIT_JOB_BG)
    conv.submit(client, b"f", b"-", b"payload")
    assert lines(conv.admin(admin, b"show unique jobs")) == [b"-", b"alpha", b"beta"]


def test_empty_listings(conv: Conversation) -> None:
    admin = conv.connect(fd=5)
    assert conv.admin(admin, b"status") == b".\n"
    assert conv.admin(admin, b"prioritystatus") == b".\n"
    assert conv.admin(admin, b"show jobs") == b".\n"
    assert conv.admin(admin, b"workers") == b"5 127.0.0.1 - :\n.\n"


def test_version_verbose_getpid() -> None:
    conv = Conversation(EngineConfig(version="9.9.9", verbose="INFO", pid=4242))
    admin = conv.connect()
    assert conv.admin(admin, b"version") == b"OK 9.9.9\n"
    assert conv.admin(admin, b"verbose") == b"OK INFO\n"
    assert conv.admin(admin, b"getpid") == b"OK 4242\n"


def test_parse_errors_are_answered_through_admin_commands(conv: Conversation) -> None:
    admin = conv.connect()
    assert conv.admin(admin, b"foo") == b"ERR UNKNOWN_COMMAND Unknown+server+commandfoo\r\n"
    assert conv.admin(admin, b"show foo") == b"ERR UNKNOWN_SHOW_ARGUMENTS\r\n"
    assert admin.close_after_flush is False


def test_too_many_tokens_closes_the_connection(conv: Conversation) -> None:
    admin = conv.connect()
    reply = conv.admin(admin, b"a b c d e f")
    assert admin.close_after_flush is True
    assert reply in (b"", b"ERR INVALID_ARGUMENTS Too+many+arguments\r\n")


# ---------------------------------------------------------------------------------------------------- functions


def test_create_function_keeps_the_whole_name_with_a_bare_lf(conv: Conversation) -> None:
    admin = conv.connect()
    for item in Decoder().feed(b"create function foo\ncreate function bar\r\n"):
        assert isinstance(item, AdminLine)
        assert conv.admin(admin, item.line) == OK
    assert sorted(conv.engine.functions) == [b"bar", b"foo"]
    assert lines(conv.admin(admin, b"status")) == [b"bar\t0\t0\t0", b"foo\t0\t0\t0"]


def test_create_function_twice_is_fine(conv: Conversation) -> None:
    admin = conv.connect()
    assert conv.admin(admin, b"create function f") == OK
    assert conv.admin(admin, b"create function f") == OK
    assert conv.admin(admin, b"status") == b"f\t0\t0\t0\n.\n"


def test_drop_function_outcomes(conv: Conversation) -> None:
    admin, client = conv.connect(), conv.connect()
    assert conv.admin(admin, b"drop function nosuch") == b"ERR function not found\r\n"

    assert conv.admin(admin, b"create function idle") == OK
    assert conv.admin(admin, b"drop function IDLE") == OK  # names match case-insensitively
    assert b"idle" not in conv.engine.functions

    worker = conv.worker(b"busy")
    still_used = b"ERR there are still connected workers or executing clients\r\n"
    assert conv.admin(admin, b"drop function busy") == still_used
    conv.disconnect(worker)
    assert conv.admin(admin, b"drop function busy") == OK

    conv.submit(client, b"queued", b"", b"x", P.SUBMIT_JOB_BG)
    assert conv.admin(admin, b"drop function queued") == still_used  # gearmand would orphan the job
    assert conv.admin(admin, b"status") == b"queued\t1\t0\t0\n.\n"


def test_a_dropped_function_comes_back_on_next_use(conv: Conversation) -> None:
    admin, client = conv.connect(), conv.connect()
    assert conv.admin(admin, b"create function f") == OK
    assert conv.admin(admin, b"drop function f") == OK
    assert conv.admin(admin, b"status") == b".\n"
    handle = conv.submit(client, b"f", b"", b"x")
    assert conv.grab(conv.worker(b"f")) == (P.JOB_ASSIGN, (handle, b"f", b"x"))


def test_shutdown_modes(conv: Conversation) -> None:
    admin = conv.connect()
    assert conv.engine.shutdown_mode is None
    assert conv.admin(admin, b"shutdown graceful") == OK
    assert conv.engine.shutdown_mode == "graceful"
    assert conv.admin(admin, b"SHUTDOWN") == OK
    assert conv.engine.shutdown_mode == "now"


# ---------------------------------------------------------------------------------------------------- scale


def test_a_thousand_functions(conv: Conversation) -> None:
    names = [b"fn%04d" % number for number in range(1000)]
    worker, client, admin = conv.worker(*names), conv.connect(), conv.connect()
    for name in names:
        conv.submit(client, name, b"", name, P.SUBMIT_JOB_BG)
    rows = lines(conv.admin(admin, b"status"))
    assert rows == sorted(name + b"\t1\t0\t1" for name in names)
    order = [conv.grab_data(worker) for _ in names]
    assert order == names[::-1]  # the newest CAN_DO first
    assert conv.grab(worker) == NO_JOB
    assert lines(conv.admin(admin, b"status")) == sorted(name + b"\t1\t1\t1" for name in names)
    rows = conv.admin(admin, b"workers").split(b"\n")
    assert b"%d 127.0.0.1 - : %s" % (worker.fd, b" ".join(names[::-1])) in rows


def test_many_jobs(conv: Conversation) -> None:
    count = 10_000
    client, worker, admin = conv.connect(), conv.worker(b"f"), conv.connect()
    for number in range(count):
        conv.send(client, P.SUBMIT_JOB, b"f", b"u%d" % number, b"%d" % number)
    created = conv.replies(client)
    assert created == [(P.JOB_CREATED, (b"H:test:%d" % (number + 1),)) for number in range(count)]
    assert conv.admin(admin, b"status") == b"f\t%d\t0\t1\n.\n" % count
    for number in range(count):
        conv.send(worker, P.GRAB_JOB)
        conv.send(worker, P.WORK_COMPLETE, b"H:test:%d" % (number + 1), b"r%d" % number)
    assigned = conv.replies(worker)
    assert assigned == [(P.JOB_ASSIGN, (b"H:test:%d" % (n + 1), b"f", b"%d" % n)) for n in range(count)]
    completed = conv.replies(client)
    assert completed == [(P.WORK_COMPLETE, (b"H:test:%d" % (n + 1), b"r%d" % n)) for n in range(count)]
    assert conv.engine.jobs == {}
    assert conv.admin(admin, b"status") == b"f\t0\t0\t1\n.\n"
    assert conv.grab(worker) == NO_JOB
