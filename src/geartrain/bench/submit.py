"""Background submits, pipelined: the bg-submit, memory and persist workloads, and the queue fill of drain.

Each connection sends pre-built SUBMIT_JOB_BG packets in chunks and keeps at most ``window`` jobs unacknowledged,
so the server always has a full socket buffer to chew on but the generator never floods it beyond what one read
can hold. Replies are counted by scanning for the JOB_CREATED header, never decoded.

Two ways to measure: a fixed number of jobs (memory, persist, the queue fill of drain), or, for bg-submit, a
measurement window after a warm-up while the connections keep submitting, as the cross-check harness does
(``../shared/bench/gbench.py``): the queue then grows through the window as it does on a busy server, and both
tools measure the same thing.
"""

from __future__ import annotations

import selectors
import socket
import time
from typing import Any

import geartrain.bench.packets as packets
from geartrain.bench.harness import Gate, split
from geartrain.bench.measure import connect, own_cpu_seconds

JOB_CREATED_HEADER = packets.response_header(packets.JOB_CREATED)
ERROR_HEADER = packets.response_header(packets.ERROR)
RECV_SIZE = 1 << 18


class Chunks:
    """``jobs`` SUBMIT_JOB_BG packets in chunks of ``chunk``, built when first sent (a timed run may never reach the
    end of its budget). With an empty unique every full chunk is the same bytes object."""

    __slots__ = ("_built", "_built_index", "_full", "chunk", "function", "jobs", "payload", "unique_prefix")

    def __init__(self, function: bytes, payload: bytes, jobs: int, unique_prefix: bytes | None, chunk: int) -> None:
        self.function = function
        self.payload = payload
        self.jobs = jobs
        self.unique_prefix = unique_prefix
        self.chunk = chunk
        self._full = packets.bg_submits(function, payload, chunk, None) if unique_prefix is None else b""
        self._built_index = -1
        self._built = b""

    def __len__(self) -> int:
        return -(-self.jobs // self.chunk)

    def count(self, index: int) -> int:
        """Jobs in chunk ``index``."""
        return min(self.chunk, self.jobs - index * self.chunk)

    def __getitem__(self, index: int) -> bytes:
        count = self.count(index)
        if self.unique_prefix is None and count == self.chunk:
            return self._full
        if index != self._built_index:  # a partly sent chunk is asked for again: build each once
            start = index * self.chunk
            self._built = packets.bg_submits(self.function, self.payload, count, self.unique_prefix, start)
            self._built_index = index
        return self._built


class SubmitStream:
    """One connection's pipelined submits and its acknowledgement count."""

    def __init__(self, sock: socket.socket, chunks: Chunks, window: int) -> None:
        self.sock = sock
        self.chunks = chunks
        self.jobs = chunks.jobs
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
            chunk_jobs = self.chunks.count(self.next_chunk)
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


# A timed run's budget of jobs per connection: never reached (chunks are built as they are sent).
TIMED_BUDGET = 1 << 40


def bg_submit_task(params: dict[str, Any], gate: Gate) -> dict[str, Any]:
    """Harness task: ``connections`` connections submit ``jobs`` background jobs between them, or, with
    ``duration``, submit for ``warmup + duration`` seconds and count what is acknowledged in the last ``duration``."""
    address = (params["host"], params["port"])
    function = params["function"].encode()
    payload = b"x" * params["payload_size"]
    prefix: bytes | None = params["unique_prefix"].encode() if params["unique_prefix"] is not None else None
    timed = params.get("duration") is not None
    shares = [TIMED_BUDGET] * params["connections"] if timed else split(params["jobs"], params["connections"])
    streams = []
    for index, share in enumerate(shares):
        conn_prefix = None if prefix is None else prefix + f"{index}-".encode()
        sock = connect(address)
        sock.setblocking(False)
        streams.append(
            SubmitStream(sock, Chunks(function, payload, share, conn_prefix, params["chunk"]), params["window"])
        )

    start = gate()
    while time.perf_counter() < start:
        pass
    cpu_before = own_cpu_seconds()
    window: dict[str, float] = {}
    if timed:
        window = _pump_for(streams, start + params["warmup"], start + params["warmup"] + params["duration"])
        end = window["end"]
    else:
        end = _pump(streams, params.get("max_time", 600.0))
    cpu = own_cpu_seconds() - cpu_before
    for stream in streams:
        stream.sock.close()
    return {
        "submitted": sum(s.jobs_sent for s in streams),
        "acknowledged": sum(s.created.count for s in streams),
        "end": end,
        "cpu_s": cpu,
    } | window


def _pump_for(streams: list[SubmitStream], window_start: float, window_end: float) -> dict[str, float]:
    """Keep every stream submitting until ``window_end``; the acknowledgements counted between the two instants."""
    selector = _selector(streams)
    first: tuple[float, int] | None = None
    while True:
        now = time.perf_counter()
        if first is None and now >= window_start:
            first = (now, sum(s.created.count for s in streams))
        if now >= window_end:
            break
        _turn(selector, 0.05)
    selector.close()
    assert first is not None
    return {
        "window_acknowledged": sum(s.created.count for s in streams) - first[1],
        "window_s": now - first[0],
        "end": now,
    }


def _pump(streams: list[SubmitStream], max_time: float) -> float:
    """Until every stream's jobs are acknowledged; returns when the last one was."""
    selector = _selector(streams)
    pending = sum(1 for stream in streams if not stream.done)
    deadline = time.monotonic() + max_time
    end = time.perf_counter()
    while pending:
        if time.monotonic() > deadline:
            acked = sum(s.created.count for s in streams)
            raise TimeoutError(f"bg submits not acknowledged after {max_time:.0f} s ({acked} acknowledged)")
        finished = _turn(selector, 1.0)
        if finished:
            pending -= finished
            end = time.perf_counter()
    selector.close()
    return end


def _selector(streams: list[SubmitStream]) -> selectors.BaseSelector:
    selector = selectors.DefaultSelector()
    for stream in streams:
        stream.send_more()
        selector.register(stream.sock, _mask(stream), stream)
    return selector


def _turn(selector: selectors.BaseSelector, timeout: float) -> int:
    """Receive and send on every ready stream; returns how many streams got their last acknowledgement."""
    finished = 0
    for key, mask in selector.select(timeout):
        stream = key.data
        if mask & selectors.EVENT_READ:
            was_done = stream.done
            stream.receive()
            finished += stream.done and not was_done
        stream.send_more()
        wanted = _mask(stream)
        if wanted != key.events:
            selector.modify(stream.sock, wanted, stream)
    return finished


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
    duration: float | None = None,
    warmup: float = 1.0,
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
                    "duration": duration,
                    "warmup": warmup,
                },
            )
        )
    return tasks
