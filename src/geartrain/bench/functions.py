"""Round trips spread over many functions: every worker registers all of them, clients submit to each in turn.

What grows is the server's per-function state: the table of functions, each worker's list of what it can do (a
GRAB_JOB looks through it for a function with a queued job), and the wake-up of sleeping workers per function.
The job itself is the round-trip workload's: one SUBMIT_JOB in flight per client connection, echo workers.
"""

from __future__ import annotations

import selectors
import time
from typing import Any

import geartrain.bench.packets as packets
from geartrain.bench.harness import Gate, run_tasks
from geartrain.bench.measure import own_cpu_seconds, percentile
from geartrain.bench.roundtrip import ClientConnection, _receive
from geartrain.bench.workers import GRAB_JOB, WorkerConnection
from geartrain.bench.workloads import Result, Target, _function, _Meter


def functions_task(params: dict[str, Any], gate: Gate) -> dict[str, Any]:
    """Harness task: ``workers`` echo workers that can do all ``functions`` functions, and ``clients`` clients
    with one job in flight each, the n-th job of client c going to function ``(c + n * clients) % functions``."""
    host, port = params["host"], params["port"]
    payload = b"x" * params["payload_size"]
    names = [f"{params['function']}-{n}".encode() for n in range(params["functions"])]
    submits = [packets.request(packets.SUBMIT_JOB, name, b"", payload) for name in names]
    workers = [WorkerConnection(host, port, names[0], echo=True) for _ in range(params["workers"])]
    registrations = b"".join(packets.request(packets.CAN_DO, name) for name in names[1:])
    for worker in workers:
        worker.sock.sendall(registrations)
    clients = [ClientConnection(host, port, submits[0]) for _ in range(params["clients"])]
    sockets = [worker.sock for worker in workers] + [client.sock for client in clients]
    selector = selectors.DefaultSelector()
    for sock, endpoint in zip(sockets, [*workers, *clients], strict=True):
        selector.register(sock, selectors.EVENT_READ, endpoint)
    turn = {id(client): number for number, client in enumerate(clients)}

    def submit(client: ClientConnection) -> None:
        client.submit = submits[turn[id(client)] % len(submits)]
        turn[id(client)] += len(clients)
        client.send(1)

    start = gate()
    window_start = start + params["warmup"]
    window_end = window_start + params["duration"]
    latencies: list[float] = []
    cpu_before = own_cpu_seconds()
    for worker in workers:
        worker.sock.sendall(GRAB_JOB)
    for client in clients:
        submit(client)
    outstanding = len(clients)
    answered = 0
    while outstanding:
        if time.perf_counter() > window_end + 10.0:
            raise TimeoutError(f"{outstanding} jobs unanswered 10 s after the window")
        for key, _ in selector.select(0.2):
            endpoint = key.data
            if isinstance(endpoint, WorkerConnection):
                endpoint.handle(stop_on_no_job=False)
                continue
            done = _receive(endpoint, latencies, window_start, window_end)
            outstanding -= done
            answered += done
            if done and time.perf_counter() < window_end:
                submit(endpoint)
                outstanding += 1
    cpu = own_cpu_seconds() - cpu_before
    selector.close()
    for sock in sockets:
        sock.close()
    return {"latencies": latencies, "answered": answered, "cpu_s": cpu}


def round_trip_functions(
    target: Target,
    *,
    functions: int = 100,
    clients: int = 4,
    workers: int = 4,
    duration: float = 3.0,
    warmup: float = 0.5,
    payload_size: int = 100,
) -> Result:
    """Round trips over ``functions`` functions (each worker registers all of them): jobs/s, p50, p99."""
    params = {
        "host": target.host,
        "port": target.port,
        "function": _function("functions"),
        "functions": functions,
        "clients": clients,
        "workers": workers,
        "duration": duration,
        "warmup": warmup,
        "payload_size": payload_size,
    }
    meter = _Meter(target)
    _, results = run_tasks([(functions_task, params)], start_delay=0.05, on_start=meter.begin)
    latencies = sorted(results[0]["latencies"])
    return Result(
        workload="functions",
        variant=f"round-trip over {functions} functions",
        server=target.name,
        metrics={
            "jobs_per_s": len(latencies) / duration,
            "p50_us": percentile(latencies, 0.50) * 1e6,
            "p99_us": percentile(latencies, 0.99) * 1e6,
        },
        counts={"in_window": len(latencies), "answered": results[0]["answered"]},
        elapsed_s=duration,
        cpu_jobs=results[0]["answered"],
        server_cpu_s=meter.cpu(),
        generator_cpu_s=results[0]["cpu_s"],
        params={k: v for k, v in params.items() if k not in ("host", "port")},
    )
