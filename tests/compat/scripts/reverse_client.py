#!/usr/bin/env python3
"""The classic python-gearman "reverse" client, as its documentation wrote it, plus background jobs, several jobs
at once, status queries and the admin client. Only the import line is changed.

Usage: reverse_client.py HOST:PORT SCENARIO
"""

# ruff: noqa: UP031  (python-gearman-era code, kept as it was written: % formatting)

import sys

from geartrain.compat import gearman  # was: import gearman
from geartrain.compat.gearman import JOB_UNKNOWN  # was: from gearman import JOB_UNKNOWN

server = sys.argv[1]
scenario = sys.argv[2]


def check_request_status(job_request):
    if job_request.complete:
        print("Job %s finished!  Result: %s - %s" % (job_request.job.unique, job_request.state, job_request.result))
    elif job_request.timed_out:
        print("Job %s timed out!" % job_request.job.unique)
    elif job_request.state == JOB_UNKNOWN:
        print("Job %s connection failed!" % job_request.job.unique)


gm_client = gearman.GearmanClient([server])

if scenario == "reverse":
    completed_job_request = gm_client.submit_job("reverse", "Hello World!", unique="hello-1")
    check_request_status(completed_job_request)

elif scenario == "multiple":
    list_of_jobs = [dict(task="reverse", data="job %d" % n) for n in range(5)]
    submitted_requests = gm_client.submit_multiple_jobs(list_of_jobs, background=False, wait_until_complete=False)
    completed_requests = gm_client.wait_until_jobs_completed(submitted_requests, poll_timeout=20.0)
    for completed_job_request in completed_requests:
        print(
            "%s -> %s (%s)"
            % (completed_job_request.job.data, completed_job_request.result, completed_job_request.state)
        )

elif scenario == "background":
    submitted_job_request = gm_client.submit_job(
        "reverse", "queued for later", priority=gearman.PRIORITY_HIGH, background=True
    )
    print("background complete: %s, state %s" % (submitted_job_request.complete, submitted_job_request.state))
    status_request = gm_client.get_job_status(submitted_job_request)
    print("status known=%s running=%s" % (status_request.status["known"], status_request.status["running"]))
    admin = gearman.GearmanAdminClient([server])
    for row in admin.get_status():
        if row["task"] == "reverse":
            print("admin status: task=%(task)s queued=%(queued)d running=%(running)d" % row)

elif scenario == "progress":
    request = gm_client.submit_job("progress", "3", poll_timeout=20.0)
    print("state %s result %s" % (request.state, request.result))
    print("data updates: %s" % list(request.data_updates))
    print("warning updates: %s" % list(request.warning_updates))
    print("last status: %(numerator)d/%(denominator)d" % request.status)

elif scenario == "failures":
    failed = gm_client.submit_job("fail", "x", poll_timeout=20.0)
    print("fail: state %s complete %s" % (failed.state, failed.complete))
    raised = gm_client.submit_job("exception", "boom", poll_timeout=20.0)
    print("exception: state %s exception %s" % (raised.state, raised.exception))

elif scenario == "timeout":
    request = gm_client.submit_job("nobody_serves_this", "x", poll_timeout=0.5)
    check_request_status(request)
    print("state %s timed_out %s" % (request.state, request.timed_out))

elif scenario == "unavailable":
    try:
        gm_client.submit_job("reverse", "x")
    except gearman.errors.ServerUnavailable as exc:
        print("ServerUnavailable: %s" % type(exc).__name__)

elif scenario == "admin":
    admin = gearman.GearmanAdminClient([server])
    print("ping took less than 10 s: %s" % (admin.ping_server() < 10))
    print("version: %s" % admin.get_version())
    print("maxqueue: %s" % admin.send_maxqueue("reverse", 10))
    for worker in admin.get_workers():
        if worker["client_id"] == "python-worker":
            print("worker tasks: %s" % ",".join(sorted(worker["tasks"])))
    print("cancel unknown: %s" % admin.cancel_job("H:nosuch:1"))

else:
    sys.exit("unknown scenario " + scenario)
