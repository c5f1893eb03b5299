"""Kept results (issue 15, ``result_ttl``): how a background job ended, as the life cycle keeps it
(core/lifecycle.py) and as a store keeps it: a record under the function ``gt:result:<function>``, keyed by the
job's handle, whose data is :data:`RESULT_MAGIC`, a JSON header line, then the result's data."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

from geartrain.server.core.records import StoredJob

RESULT_PREFIX = b"gt:result:"  # a kept result (result_ttl): key the job's handle, function gt:result:<function>
RESULT_MAGIC = b"GTRESULT1\n"


@dataclass(slots=True)
class KeptResult:
    """How a background job ended, kept for its function's ``result_ttl``."""

    handle: bytes
    function: bytes
    unique: bytes
    status: str  # "complete", "failed" or "exception"
    data: bytes  # WORK_COMPLETE's data, or the exception's, or the last error of a dead job
    finished: float
    expires: float

    def record(self) -> StoredJob:
        header = {"status": self.status, "finished": self.finished, "expires": self.expires}
        data = RESULT_MAGIC + json.dumps(header).encode() + b"\n" + self.data
        return StoredJob(self.handle, RESULT_PREFIX + self.function, self.unique, 1, data)

    def view(self) -> dict[str, object]:
        return {
            "handle": self.handle.decode("latin-1"),
            "function": self.function.decode("utf-8", "replace"),
            "unique": self.unique.decode("utf-8", "replace"),
            "status": self.status,
            "finished": self.finished,
            "expires": self.expires,
            "data": self.data.decode("utf-8", "replace"),
            "data_base64": base64.b64encode(self.data).decode(),
        }


def result_from_record(stored: StoredJob) -> KeptResult | None:
    if not stored.data.startswith(RESULT_MAGIC):
        return None
    header_line, _, data = stored.data[len(RESULT_MAGIC) :].partition(b"\n")
    try:
        header = json.loads(header_line)
        status, finished, expires = str(header["status"]), float(header["finished"]), float(header["expires"])
    except (ValueError, KeyError, TypeError):
        return None
    function = stored.function[len(RESULT_PREFIX) :]
    return KeptResult(stored.key, function, stored.unique, status, data, finished, expires)
