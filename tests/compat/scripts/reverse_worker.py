#!/usr/bin/env python3
"""The classic python-gearman "reverse" worker, as its README wrote it; only the import line is changed.

Usage: reverse_worker.py HOST:PORT [MAX_JOBS]
"""

# ruff: noqa: UP031  (python-gearman-era code, kept as it was written: % formatting)

import sys

from geartrain.compat import gearman  # was: import gearman

server = sys.argv[1]
max_jobs = int(sys.argv[2]) if len(sys.argv) > 2 else 0


class CountingWorker(gearman.GearmanWorker):
    """Stops after MAX_JOBS jobs (python-gearman's after_job hook); 0 runs forever."""

    jobs_done = 0

    def after_job(self):
        self.jobs_done += 1
        return not max_jobs or self.jobs_done < max_jobs


gm_worker = CountingWorker([server])


def task_listener_reverse(gearman_worker, gearman_job):
    print("Reversing string: " + gearman_job.data, flush=True)
    return gearman_job.data[::-1]


def task_listener_progress(gearman_worker, gearman_job):
    steps = int(gearman_job.data)
    for step in range(1, steps + 1):
        gearman_worker.send_job_status(gearman_job, step, steps)
        gearman_worker.send_job_data(gearman_job, "step %d" % step)
    gearman_worker.send_job_warning(gearman_job, "almost done")
    return "done after %d steps" % steps


def task_listener_fail(gearman_worker, gearman_job):
    raise RuntimeError("this task always fails")


def task_listener_exception(gearman_worker, gearman_job):
    gearman_worker.send_job_exception(gearman_job, "custom exception: " + gearman_job.data)
    return None


# gm_worker.set_client_id is optional
gm_worker.set_client_id("python-worker")
gm_worker.register_task("reverse", task_listener_reverse)
gm_worker.register_task("progress", task_listener_progress)
gm_worker.register_task("fail", task_listener_fail)
gm_worker.register_task("exception", task_listener_exception)

# Enter our work loop and call gm_worker.after_poll() after each time we timeout/see socket activity
gm_worker.work()
print("worker stopped after %d jobs" % gm_worker.jobs_done, flush=True)
