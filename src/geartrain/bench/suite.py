"""The standard set of variants (issue 5's workloads at their sizes, and a small smoke set) and a dispatcher."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from geartrain.bench import library, workloads
from geartrain.bench.stores import KINDS as STORE_KINDS
from geartrain.bench.workloads import Result, Target

WORKLOADS: dict[str, Callable[..., Result]] = {
    "bg-submit": workloads.bg_submit,
    "drain": workloads.drain,
    "round-trip": workloads.round_trip,
    "echo": workloads.echo,
    "memory": workloads.memory,
    "connections": workloads.connections,
    "persist": workloads.persist,
    "client-library": library.client_library,
}


@dataclass(frozen=True)
class Variant:
    """A workload with fixed parameters; ``smoke`` holds the small sizes of ``make bench-smoke``."""

    workload: str
    params: dict[str, Any]
    smoke: dict[str, Any] | None = None  # None: left out of the smoke set
    tags: frozenset[str] = field(default_factory=frozenset)

    def arguments(self, smoke: bool) -> dict[str, Any]:
        return self.params | (self.smoke or {}) if smoke else dict(self.params)


_RT_SMOKE = {"duration": 0.5, "warmup": 0.2}
# bg-submit as the cross-check harness measures it: 1 s of warm-up, then 4 s while the queue keeps growing.
_BG_TIMED = {"duration": 4.0, "warmup": 1.0}
_BG_SMOKE = {"duration": 0.3, "warmup": 0.1}

VARIANTS: list[Variant] = [
    Variant("bg-submit", {"connections": 1, "unique": False} | _BG_TIMED, _BG_SMOKE),
    Variant("bg-submit", {"connections": 8, "unique": False} | _BG_TIMED, _BG_SMOKE),
    Variant("bg-submit", {"connections": 1, "unique": True} | _BG_TIMED),
    Variant("bg-submit", {"connections": 8, "unique": True} | _BG_TIMED, _BG_SMOKE),
    Variant("drain", {"workers": 1}),
    Variant("drain", {"workers": 4}, {"jobs": 5_000}),
    Variant("round-trip", {"clients": 1, "workers": 1}),
    Variant("round-trip", {"clients": 16, "workers": 1}),
    Variant("round-trip", {"clients": 64, "workers": 1}),
    Variant("round-trip", {"clients": 1, "workers": 4}, _RT_SMOKE),
    Variant("round-trip", {"clients": 4, "workers": 4}),
    Variant("round-trip", {"clients": 16, "workers": 4}, _RT_SMOKE),
    Variant("round-trip", {"clients": 64, "workers": 4}, _RT_SMOKE),
    Variant("echo", {"duration": 4.0, "warmup": 1.0}, {"duration": 0.3, "warmup": 0.1}),
    Variant("memory", {"jobs": 1_000_000}, {"jobs": 20_000}, frozenset({"needs-pid"})),
    Variant("connections", {"idle": 5_000}, {"idle": 200} | _RT_SMOKE),
    Variant("client-library", {"jobs": 3_000, "in_flight": 1}, {"jobs": 200}),
    Variant("client-library", {"jobs": 20_000, "in_flight": 100}, {"jobs": 1_000}),
]


# Persistent queues, every store: submits (each JOB_CREATED a stored job), and drains with one and with four
# workers (each worker's next job waits for its last one's deletion). Distinct uniques: gearmand's SQL stores
# refuse a second job without one.
for _kind in STORE_KINDS:
    _tags = frozenset({f"store:{_kind}"})
    VARIANTS += [
        Variant("persist", {"jobs": 10_000, "connections": 8, "store": _kind}, {"jobs": 500}, _tags),
        Variant("drain", {"workers": 1, "jobs": 5_000, "unique": True, "store": _kind}, {"jobs": 300}, _tags),
        Variant("drain", {"workers": 4, "jobs": 10_000, "unique": True, "store": _kind}, {"jobs": 600}, _tags),
        # geartrain's faster promise (docs/persistence.md): a worker's next job does not wait for the deletion.
        Variant(
            "drain",
            {"workers": 1, "jobs": 10_000, "unique": True, "store": f"{_kind}, geartrain --store-ack submits"},
            {"jobs": 300},
            _tags | {"flag:--store-ack=submits"},
        ),
        Variant(
            "drain",
            {"workers": 4, "jobs": 20_000, "unique": True, "store": f"{_kind}, geartrain --store-ack submits"},
            {"jobs": 600},
            _tags | {"flag:--store-ack=submits"},
        ),
    ]


def store_of(variant: Variant) -> str:
    """The store a variant's server runs on: a kind of :data:`geartrain.bench.stores.KINDS`, or memory."""
    return next((tag.removeprefix("store:") for tag in variant.tags if tag.startswith("store:")), "memory")


def geartrain_flags(variant: Variant) -> tuple[str, ...]:
    """Flags a variant gives geartrain's server only (gearmand has no such mode and runs as it is)."""
    return tuple(tag.removeprefix("flag:") for tag in sorted(variant.tags) if tag.startswith("flag:"))


def select(smoke: bool, names: list[str] | None = None, stores: list[str] | None = None) -> list[Variant]:
    """The variants of the full or the smoke set, optionally only those of the named workloads, and of store
    variants only those on ``stores``."""
    chosen = [v for v in VARIANTS if not smoke or v.smoke is not None]
    chosen = [v for v in chosen if not names or v.workload in names]
    return [v for v in chosen if stores is None or store_of(v) in ("memory", *stores)]


def run(workload: str, target: Target, **options: Any) -> Result:
    """Run ``workload`` with those ``options`` its function takes (others, e.g. ``None`` values, are ignored)."""
    function = WORKLOADS[workload]
    accepted = inspect.signature(function).parameters
    return function(target, **{k: v for k, v in options.items() if k in accepted and v is not None})
