"""Background submits, pipelined: the bg-submit, memory and persist workloads, and the queue fill of drain.

Each connection sends a pre-built blob of SUBMIT_JOB_BG packets in chunks and keeps at most ``window`` jobs
unacknowledged, so the server always has a full socket buffer to chew on but the generator never floods it beyond
what one read can hold. Replies are counted by scanning for the JOB_CREATED header, never decoded.
"""

from __future__ import annotations

import selectors
import socket
import time
from typing import Any

from geartrain.bench import packets
from geartrain.bench.harness import Gate, split
from geartrain.bench.measure import connect, own_cpu_seconds

JOB_CREATED_HEADER = packets.response_header(packets.JOB_CREATED)
ERROR_HEADER = packets.response_header(packets.ERROR)
RECV_SIZE = 1 << 18


class SubmitStream:
    """One connection's pipelined submits and its acknowledgement count."""

    def __init__(self, sock: socket.socket, chunks: list[bytes], jobs_per_chunk: list[int], window: int) -> None:
        self.sock = sock
        self.chunks = chunks
        self.jobs_per_chunk = jobs_per_chunk
        self.jobs = sum(jobs_per_chunk)
        self.window = window
        self.next_chunk = 0
        self.offset = 0  # bytes of chunks[next_chunk] already sent
        self.jobs_sent = 0
        self.created = packets.PatternCounter(JOB_CREATED_HEADER)
        self.errors = packets.PatternCounter(ERROR_HEADER)
        self.wants_write = True

    @property
    def done(self) -> bool:
        return self.created.count >= self.jobs

    def send_more(self) -> None:
        """Send while the window allows; remembers a partial send for the next writable event."""
        while self.next_chunk < len(self.chunks):
            chunk_jobs = self.jobs_per_chunk[self.next_chunk]
            if self.offset == 0 and self.jobs_sent + chunk_jobs - self.created.count > self.window:
                self.wants_write = False
                return
            chunk = self.chunks[self.next_chunk]
            try:
                sent = self.sock.send(memoryview(chunk)[self.offset :])
            except BlockingIOError:
                self.wants_write = True
                return
            self.offset += sent
            if self.offset < len(chunk):
                self.wants_write = True
                return
            self.offset = 0
            self.next_chunk += 1
            self.jobs_sent += chunk_jobs
        self.wants_write = False

    def receive(self) -> None:
        data = self.sock.recv(RECV_SIZE)
        if not data:
            raise ConnectionError(f"server closed the connection after {self.created.count} JOB_CREATED")
        self.created.feed(data)
        if self.errors.feed(data):
            raise ConnectionError(f"server answered ERROR: {data[data.find(ERROR_HEADER) :][:200]!r}")


def build_chunks(
    function: bytes, payload: bytes, jobs: int, unique_prefix: bytes | None, chunk: int
) -> tuple[list[bytes], list[int]]:
    """``jobs`` SUBMIT_JOB_BG packets in chunks of ``chunk``, and the job count of each chunk.

    With an empty unique every full chunk is the same bytes object, so a million jobs cost one chunk of memory.
    """
    counts = [min(chunk, jobs - start) for start in range(0, jobs, chunk)]
    if unique_prefix is None:
        full = packets.bg_submits(function, payload, chunk, None)
        chunks = [full if n == chunk else packets.bg_submits(function, payload, n, None) for n in counts]
    else:
        chunks = [
            packets.bg_submits(function, payload, n, unique_prefix, start)
            for start, n in zip(range(0, jobs, chunk), counts, strict=True)
        ]
    return chunks, counts


def bg_submit_task(params: dict[str, Any], gate: Gate) -> dict[str, Any]:
    """Harness task: ``connections`` connections submit ``jobs`` background jobs between them."""
    address = (params["host"], params["port"])
    function = params["function"].encode()
    payload = b"x" * params["payload_size"]
    prefix: bytes | None = params["unique_prefix"].encode() if params["unique_prefix"] is not None else None
    chunk = params["chunk"]
    streams = []
    for index, share in enumerate(split(params["jobs"], params["connections"])):
        conn_prefix = None if prefix is None else prefix + f"{index}-".encode()
        chunks, counts = build_chunks(function, payload, share, conn_prefix, chunk)
        sock = connect(address)
        sock.setblocking(False)
        streams.append(SubmitStream(sock, chunks, counts, params["window"]))

    start = gate()
    while time.perf_counter() < start:
        pass
    cpu_before = own_cpu_seconds()
    end = _pump(streams, params.get("max_time", 600.0))
    cpu = own_cpu_seconds() - cpu_before
    for stream in streams:
        stream.sock.close()
    return {
        "submitted": sum(s.jobs_sent for s in streams),
        "acknowledged": sum(s.created.count for s in streams),
        "end": end,
        "cpu_s": cpu,
    }


def _pump(streams: list[SubmitStream], max_time: float) -> float:
    selector = selectors.DefaultSelector()
    for stream in streams:
        stream.send_more()
        selector.register(stream.sock, _mask(stream), stream)
    pending = sum(1 for stream in streams if not stream.done)
    deadline = time.monotonic() + max_time
    end = time.perf_counter()
    while pending:
        if time.monotonic() > deadline:
            acked = sum(s.created.count for s in streams)
            raise TimeoutError(f"bg submits not acknowledged after {max_time:.0f} s ({acked} acknowledged)")
        for key, mask in selector.select(1.0):
            stream = key.data
            if mask & selectors.EVENT_READ:
                was_done = stream.done
                stream.receive()
                if stream.done and not was_done:
                    pending -= 1
                    end = time.perf_counter()
            stream.send_more()
            wanted = _mask(stream)
            if wanted != key.events:
                selector.modify(stream.sock, wanted, stream)
    selector.close()
    return end


def _mask(stream: SubmitStream) -> int:
    return selectors.EVENT_READ | (selectors.EVENT_WRITE if stream.wants_write else 0)


def submit_tasks(
    host: str,
    port: int,
    *,
    jobs: int,
    connections: int,
    processes: int,
    function: str,
    payload_size: int,
    unique: bool,
    window: int = 1024,  # gbench's defaults: deeper pipelines favour whichever server reads more per syscall
    chunk: int = 64,
    tag: str = "",
) -> list[tuple[Any, dict[str, Any]]]:
    """Harness tasks that submit ``jobs`` over ``connections`` spread across ``processes`` processes.

    Distinct uniques carry ``tag`` and the process number, so that repeated runs against one server never
    coalesce with jobs still queued from an earlier run.
    """
    processes = max(1, min(processes, connections))
    job_shares = split(jobs, connections)
    conn_shares = split(connections, processes)
    tasks: list[tuple[Any, dict[str, Any]]] = []
    first = 0
    for number, conns in enumerate(conn_shares):
        share = sum(job_shares[first : first + conns])
        first += conns
        prefix = f"{tag or time.time_ns()}-{number}-" if unique else None
        tasks.append(
            (
                bg_submit_task,
                {
                    "host": host,
                    "port": port,
                    "function": function,
                    "payload_size": payload_size,
                    "unique_prefix": prefix,
                    "jobs": share,
                    "connections": conns,
                    "window": window,
                    "chunk": min(chunk, window),
                },
            )
        )
    return tasks
