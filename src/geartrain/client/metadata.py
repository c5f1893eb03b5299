"""What a submit carries besides its workload: the caller's metadata fields and the trace context, sent in the meta
block of the geartrain-meta option (:mod:`geartrain.protocol.meta`)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING

from geartrain import tracing
from geartrain.client.job import Job
from geartrain.protocol.meta import ATTEMPT, format_meta

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer


def _checked(meta: Mapping[str, str]) -> dict[str, str]:
    fields = dict(meta)
    if ATTEMPT in fields:
        # The server puts the attempt in front of the fields it hands to the worker: a second one would shadow it.
        raise ValueError("'attempt' is set by the server; it cannot be part of a job's metadata")
    format_meta(fields)  # raises MetaError for a bad key or value before anything is sent
    return fields


@contextmanager
def carrying(job: Job, meta: Mapping[str, str] | None, tracer: Tracer | None) -> Iterator[None]:
    """Around one submit: give ``job`` its meta block (``meta``, plus the trace context of a PRODUCER span when the
    submit runs inside a trace and ``tracer`` is given); the span, if any, ends with the block."""
    fields = _checked(meta) if meta else {}
    span = tracing.start_producer(tracer, job.function) if tracer is not None else None
    if span is None:
        job._meta = format_meta(fields) if fields else None
        yield
        return
    with tracing.use_span(span):
        # Fields the caller set win: one who passes a traceparent means to propagate it by hand.
        job._meta = format_meta(tracing.context_fields(span) | fields)
        yield
        tracing.set_handle(span, job.handle)
