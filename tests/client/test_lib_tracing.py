"""OpenTelemetry through a job: the client's PRODUCER span, its context in the job's metadata, the worker's CONSUMER
span under it (async, thread and process functions), errors on the span; and nothing at all without
OpenTelemetry, with ``trace=False``, or outside any trace. Spans are read back with the SDK's in-memory exporter."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import pytest

pytest.importorskip("opentelemetry.sdk")

from fakeserver import META, Broker
from libhelpers import eventually, running
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from geartrain import Client, JobFailed, SyncClient, ThreadJob, Worker, WorkerJob, tracing
from geartrain.worker import JobData
from servers import GearmanServer


@pytest.fixture(scope="session")
def span_exporter() -> InMemorySpanExporter:
    """One exporter on the process's tracer provider (OpenTelemetry lets it be set once per process)."""
    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


@pytest.fixture
def spans(span_exporter: InMemorySpanExporter) -> Iterator[InMemorySpanExporter]:
    span_exporter.clear()
    yield span_exporter
    span_exporter.clear()


def named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [span for span in exporter.get_finished_spans() if span.name == name]


def context_in_a_process(job: JobData) -> str:
    """Module level, so that a spawned process pool can import it: the trace context reaches the process too."""
    return f"{job.meta['traceparent']} {os.getpid()}"


async def test_worker_span_continues_the_client_trace(spans: InMemorySpanExporter) -> None:
    inside: list[trace.SpanContext] = []

    async def work(job: WorkerJob) -> bytes:
        inside.append(trace.get_current_span().get_span_context())
        return b"ok"

    broker = Broker(meta=True)
    async with broker.running() as address:
        worker = Worker(address)
        worker.register("resize", work)
        async with running(worker), Client(address) as client:
            with trace.get_tracer("test").start_as_current_span("request") as root:
                assert await client.do("resize", b"img", meta={"tenant": "a"}) == b"ok"
    [producer] = named(spans, "gearman submit resize")
    [consumer] = named(spans, "gearman process resize")
    assert producer.kind is SpanKind.PRODUCER and consumer.kind is SpanKind.CONSUMER
    assert producer.parent is not None and producer.parent.span_id == root.get_span_context().span_id
    assert consumer.context.trace_id == producer.context.trace_id == root.get_span_context().trace_id
    assert consumer.parent is not None and consumer.parent.span_id == producer.context.span_id
    assert inside == [consumer.context]  # the function ran with the consumer span current
    assert producer.attributes is not None and consumer.attributes is not None
    assert dict(producer.attributes) == {
        "messaging.system": "gearman",
        "messaging.destination.name": "resize",
        "messaging.operation.type": "send",
        "messaging.message.id": "H:fake:1",
    }
    assert consumer.attributes["gearman.attempt"] == 1
    assert consumer.attributes["messaging.message.id"] == "H:fake:1"
    assert consumer.status.status_code is StatusCode.UNSET
    # The context went as meta fields beside the caller's own.
    fields, _ = broker.submitted[0]
    assert fields is not None and fields.startswith(b"traceparent=00-") and fields.endswith(b"\ntenant=a")


async def test_thread_functions_errors_and_retries_on_the_consumer_span(spans: InMemorySpanExporter) -> None:
    inside: list[trace.SpanContext] = []

    def fails(job: ThreadJob) -> bytes:
        inside.append(trace.get_current_span().get_span_context())
        raise JobFailed("no")

    broker = Broker(meta=True)
    broker.attempt = 3
    async with broker.running() as address:
        worker = Worker(address)
        worker.register("f", fails)
        async with running(worker), Client(address) as client:
            with trace.get_tracer("test").start_as_current_span("request"), pytest.raises(JobFailed):
                await client.do("f")
    [consumer] = named(spans, "gearman process f")
    [producer] = named(spans, "gearman submit f")
    assert inside == [consumer.context] and consumer.parent is not None
    assert consumer.parent.span_id == producer.context.span_id
    assert consumer.status.status_code is StatusCode.ERROR
    assert [event.name for event in consumer.events] == ["exception"]
    assert consumer.attributes is not None and consumer.attributes["gearman.attempt"] == 3
    # The job's failure is the worker's to report; the submit itself went well.
    assert producer.status.status_code is StatusCode.UNSET


async def test_process_functions_get_a_span_around_their_run(spans: InMemorySpanExporter) -> None:
    broker = Broker(meta=True)
    async with broker.running() as address:
        worker = Worker(address)
        worker.register("p", context_in_a_process, executor="process")
        async with running(worker), Client(address) as client:
            with trace.get_tracer("test").start_as_current_span("request"):
                result = await client.do("p", timeout=30)
    [producer] = named(spans, "gearman submit p")
    [consumer] = named(spans, "gearman process p")
    traceparent, pid = result.decode().split()
    assert int(pid) != os.getpid()
    assert traceparent.startswith(f"00-{producer.context.trace_id:032x}-{producer.context.span_id:016x}-")
    assert consumer.parent is not None and consumer.parent.span_id == producer.context.span_id


async def test_the_blocking_client_carries_the_callers_trace(spans: InMemorySpanExporter) -> None:
    seen: list[dict[str, str]] = []

    async def work(job: WorkerJob) -> None:
        seen.append(job.meta)

    def submit_in_a_span(address: str) -> str:
        with SyncClient(address) as client, trace.get_tracer("test").start_as_current_span("blocking") as root:
            client.do("f")
            return f"{root.get_span_context().span_id:016x}"

    broker = Broker(meta=True)
    async with broker.running() as address:
        worker = Worker(address)
        worker.register("f", work)
        async with running(worker):
            root_id = await asyncio.to_thread(submit_in_a_span, address)
    [producer] = named(spans, "gearman submit f")
    assert producer.parent is not None and f"{producer.parent.span_id:016x}" == root_id
    assert seen[0]["traceparent"].split("-")[2] == f"{producer.context.span_id:016x}"
    assert len(named(spans, "gearman process f")) == 1


@pytest.mark.parametrize("how", ["no opentelemetry", "trace=False", "outside any span"])
async def test_no_spans_and_no_metadata(how: str, spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch) -> None:
    if how == "no opentelemetry":
        monkeypatch.setattr(tracing, "AVAILABLE", False)
    seen: list[dict[str, str]] = []

    async def work(job: WorkerJob) -> None:
        seen.append(job.meta)

    broker = Broker(meta=True)
    async with broker.running() as address:
        worker = Worker(address, trace=how != "trace=False")
        worker.register("f", work)
        async with running(worker), Client(address, trace=how != "trace=False") as client:
            if how == "outside any span":
                await client.do("f")
            else:
                with trace.get_tracer("test").start_as_current_span("request"):
                    await client.do("f")
            await eventually(lambda: seen)
    assert seen == [{}]
    assert broker.submitted == [(None, b"")]  # no block: the client never asked for the option
    assert broker.options.count(META) == 1  # the worker's
    assert not [span for span in spans.get_finished_spans() if span.name.startswith("gearman")]


async def test_a_trace_crosses_a_real_server_and_gearmand_runs_the_job_without_one(
    gearman_server: GearmanServer, spans: InMemorySpanExporter
) -> None:
    """Our client, the real server process and our worker: the worker's span is the client's child and the job
    knows its attempt; against gearmand (which refuses the option) the same code runs the job, untraced."""
    seen: list[tuple[int, dict[str, str], bytes]] = []

    async def work(job: WorkerJob) -> bytes:
        seen.append((job.attempt, dict(job.meta), job.data))
        return b"ok"

    worker = Worker(gearman_server.address)
    worker.register("traced", work)
    async with running(worker), Client(gearman_server.address) as client:
        with trace.get_tracer("test").start_as_current_span("request") as root:
            assert await client.do("traced", b"img", meta={"tenant": "a"}) == b"ok"
    [(attempt, meta, data)] = seen
    assert (attempt, data) == (1, b"img")
    if gearman_server.name == "gearmand":
        assert meta == {} and named(spans, "gearman process traced") == []
        return
    assert meta["tenant"] == "a" and meta["traceparent"].split("-")[1] == f"{root.get_span_context().trace_id:032x}"
    [producer] = named(spans, "gearman submit traced")
    [consumer] = named(spans, "gearman process traced")
    assert consumer.parent is not None and consumer.parent.span_id == producer.context.span_id
