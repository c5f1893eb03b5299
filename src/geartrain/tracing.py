"""OpenTelemetry spans for jobs, when ``opentelemetry-api`` is installed (``pip install geartrain[otel]``).

A client submit that runs inside a span gets a PRODUCER span ``gearman submit <function>``, whose W3C trace context
travels with the job in its meta block (``traceparent``, ``tracestate``: the geartrain-meta option,
:mod:`geartrain.protocol.meta`). A worker runs a job that carries one inside a CONSUMER span
``gearman process <function>`` whose parent is that context, so the worker's spans join the submitter's trace.

Without a current span on the client, or a trace context in the job, nothing is created: jobs outside any trace
cost one look-up of the current span. Without OpenTelemetry, :data:`AVAILABLE` is false and the client and worker
never call in here. Spans go to the globally configured tracer provider, as OpenTelemetry instrumentations do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, TypeVar

from geartrain import __version__
from geartrain.protocol.meta import TRACEPARENT, TRACESTATE, valid_traceparent

try:
    from opentelemetry import trace as _trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError:  # the extra is not installed: tracing is off, at the cost of this one failed import
    AVAILABLE = False
else:
    AVAILABLE = True
    # Always W3C trace context, whatever propagators the application configured: the meta fields are named after it.
    _PROPAGATOR = TraceContextTextMapPropagator()

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

T = TypeVar("T")
SYSTEM = "gearman"


def new_tracer() -> Tracer:
    """geartrain's tracer (a proxy until the application sets its tracer provider). Needs :data:`AVAILABLE`."""
    return _trace.get_tracer("geartrain", __version__)


def _attributes(function: str, operation: str) -> dict[str, str | int]:
    return {
        "messaging.system": SYSTEM,
        "messaging.destination.name": function,
        "messaging.operation.type": operation,
    }


def use_span(span: Span) -> AbstractContextManager[Span]:
    """``span`` is current in the block and ends after it; an exception is recorded and marks it failed."""
    return _trace.use_span(span, end_on_exit=True)


# ---------------------------------------------------------------------- client side


def in_trace() -> bool:
    """Whether a span is current (a submit outside any trace gets no span and no trace context)."""
    return _trace.get_current_span().get_span_context().is_valid


def start_producer(tracer: Tracer, function: str) -> Span | None:
    """A PRODUCER span for a submit of ``function``, child of the current span; ``None`` outside any trace."""
    if not in_trace():
        return None
    return tracer.start_span(
        f"gearman submit {function}", kind=_trace.SpanKind.PRODUCER, attributes=_attributes(function, "send")
    )


def context_fields(span: Span) -> dict[str, str]:
    """The meta fields that carry ``span``'s context to the worker (``traceparent``, and ``tracestate`` if any)."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=_trace.set_span_in_context(span))
    return {key: carrier[key] for key in (TRACEPARENT, TRACESTATE) if carrier.get(key)}


def set_handle(span: Span, handle: str | None) -> None:
    if handle is not None:
        span.set_attribute("messaging.message.id", handle)


# ---------------------------------------------------------------------- worker side


def start_consumer(tracer: Tracer, function: str, handle: str, attempt: int, meta: Mapping[str, str]) -> Span | None:
    """A CONSUMER span for a job whose meta carries a trace context (its parent); ``None`` when it carries none."""
    traceparent = meta.get(TRACEPARENT)
    if traceparent is None or not valid_traceparent(traceparent):
        return None
    carrier = {TRACEPARENT: traceparent}
    if TRACESTATE in meta:
        carrier[TRACESTATE] = meta[TRACESTATE]
    attributes = _attributes(function, "process")
    attributes["messaging.message.id"] = handle
    attributes["gearman.attempt"] = attempt
    return tracer.start_span(
        f"gearman process {function}",
        context=_PROPAGATOR.extract(carrier),
        kind=_trace.SpanKind.CONSUMER,
        attributes=attributes,
    )


async def run_async(span: Span, work: Awaitable[T]) -> T:
    """Await ``work`` (an async function's coroutine) with ``span`` current; end the span, with any error."""
    with use_span(span):
        return await work


def run_sync(span: Span, fn: Callable[[Any], T], job: Any) -> T:
    """``fn(job)`` with ``span`` current (in a pool thread or inline); end the span, with any error."""
    with use_span(span):
        return fn(job)


def end_with(span: Span, future: asyncio.Future[Any]) -> None:
    """End ``span`` when ``future`` (a job in the process pool, where the span cannot follow) is done."""
    error = None if future.cancelled() else future.exception()
    if isinstance(error, Exception):
        span.record_exception(error)
        span.set_status(_trace.Status(_trace.StatusCode.ERROR, f"{type(error).__name__}: {error}"))
    span.end()
