"""Jobs: one record per submitted job, and the handle generator."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from geartrain.server.core.peers import Peer, PendingAck
    from geartrain.server.core.queues import Function

# gearmand's buffer for a unique id holds 64 bytes; 1.1.20 silently truncates a 64-byte unique to 63 (a defect we
# do not copy): up to 64 bytes are kept whole, longer ones are refused.
MAX_UNIQUE_SIZE = 64
# A unique of "-" means "coalesce on the workload bytes".
UNIQUE_BY_PAYLOAD = b"-"


class Job:
    """One job, queued or running.

    ``clients`` lists the foreground connections waiting for its result (a connection appears once per submit
    that attached it). ``ignore`` marks a job nobody wants any more (cancelled, or its last foreground client
    left): it is skipped and freed when a worker reaches it, and a running one may still finish silently.
    A background job of a persistent server is *pending* (``acks`` is a list) from its submit until the store's
    transaction ends: indexed for coalescing, but in no queue.
    """

    __slots__ = (
        "acks",
        "background",
        "clients",
        "created",
        "data",
        "denominator",
        "function",
        "handle",
        "ignore",
        "meta",
        "numerator",
        "priority",
        "reducer",
        "retries",
        "since",
        "store_key",
        "unique",
        "when",
        "worker",
    )

    def __init__(
        self,
        handle: bytes,
        function: Function,
        unique: bytes,
        data: bytes,
        priority: int,
        background: bool,
        when: int,
        reducer: bytes | None,
        created: float,
    ) -> None:
        self.handle = handle
        self.function = function
        self.unique = unique
        self.data = data
        self.priority = priority
        self.background = background
        self.when = when
        self.reducer = reducer
        self.created = created
        self.since = created  # when it last entered its queue, then when a worker took it (for stats)
        self.clients: tuple[Peer, ...] = ()  # a tuple: most jobs have none, and () costs no allocation
        self.worker: Peer | None = None
        self.retries = 0
        self.numerator = 0
        self.denominator = 0
        self.ignore = False
        self.meta = b""  # metadata from a client with the geartrain-meta option (protocol/meta.py)
        self.store_key: bytes | None = None  # set while the job is (being) stored
        self.acks: list[PendingAck] | None = None  # JOB_CREATEDs waiting for the store; None once it holds the job

    @property
    def handle_number(self) -> int:
        """The counter part of the handle (``<prefix>:<n>``): the order jobs were created in."""
        return int(self.handle.rsplit(b":", 1)[-1])

    def __repr__(self) -> str:
        return f"<Job {self.handle!r} {self.function.name!r} prio={self.priority} retries={self.retries}>"


_JOB_CREATED = b"\0RES" + (8).to_bytes(4, "big")  # the JOB_CREATED header without its size
_DIGITS = [str(n).encode() for n in range(1000)]
_DIGITS3 = [b"%03d" % n for n in range(1000)]


class HandleFactory:
    """Builds job handles ``<prefix>:<n>``; ``n`` counts up from 1 for each new job (coalesced submits take none).

    gearmand's counter is a uint32 that wraps; so does this one, skipping 0. Formatting a number costs more than
    the rest of a submit's bookkeeping, so handles are built per block of 1000: the block's digits are formatted
    once, and each handle is that head plus three digits from a table.
    """

    __slots__ = ("_block", "_created_head", "_head", "_next", "_prefix")

    def __init__(self, prefix: bytes) -> None:
        self._prefix = prefix + b":"
        self._next = 1
        self._block = -1
        self._head = b""
        self._created_head = b""

    def __call__(self) -> bytes:
        """The next handle alone (replay and the general submit path build no reply with it)."""
        n, block = self._advance()
        return self._head + (_DIGITS3[n - block * 1000] if block else _DIGITS[n])

    def next_with_reply(self) -> tuple[bytes, bytes]:
        """The next handle, and the JOB_CREATED packet that announces it (once per job: _advance is inlined)."""
        n = self._next
        self._next = n + 1 if n < 0xFFFFFFFF else 1
        block = n // 1000
        if block != self._block:
            self._start_block(block)
        if block:
            digits = _DIGITS3[n - block * 1000]
            return self._head + digits, self._created_head + digits
        handle = self._head + _DIGITS[n]  # 1-999 vary in length
        return handle, _JOB_CREATED + len(handle).to_bytes(4, "big") + handle

    def skip_past(self, handle: bytes) -> None:
        """Give no handle up to ``handle`` any more, if it is one of this prefix: the handles of dead jobs and kept
        results replayed from the store stay theirs after a restart (the counter starts again at 1)."""
        if handle.startswith(self._prefix):
            digits = handle[len(self._prefix) :]
            if digits.isdigit() and len(digits) <= 10:
                n = int(digits)
                if self._next <= n < 0xFFFFFFFF:
                    self._next = n + 1

    def _advance(self) -> tuple[int, int]:
        n = self._next
        self._next = n + 1 if n < 0xFFFFFFFF else 1
        block = n // 1000
        if block != self._block:
            self._start_block(block)
        return n, block

    def _start_block(self, block: int) -> None:
        self._block = block
        self._head = self._prefix + (str(block).encode() if block else b"")
        size = len(self._head) + 3  # every handle of a block from 1000 on has the same length
        self._created_head = _JOB_CREATED + size.to_bytes(4, "big") + self._head


INT64_MAX = 2**63 - 1


def leading_integer(value: bytes) -> int:
    """The number C's ``strtol`` family reads: optional sign and leading digits after whitespace; else 0.

    Unbounded here; callers apply the C type's range.
    """
    text = value.lstrip(b" \t\n\r\f\v")
    sign = 1
    if text[:1] in (b"-", b"+"):
        sign = -1 if text[:1] == b"-" else 1
        text = text[1:]
    digits = 0
    for byte in text:
        if not 48 <= byte <= 57:
            break
        digits += 1
    return sign * int(text[:digits]) if digits else 0


def status_number(value: bytes) -> int:
    """A WORK_STATUS field as gearmand keeps it for GET_STATUS: ``atoi`` (a long cut to int), shown unsigned."""
    number = max(-INT64_MAX - 1, min(INT64_MAX, leading_integer(value)))
    return number & 0xFFFFFFFF
