"""The least a pure-Python Gearman server must do for the round-trip workload: a floor, not a server.

CAN_DO, SUBMIT_JOB, GRAB_JOB, PRE_SLEEP (NOOP on a new job) and WORK_COMPLETE, on uvloop, with the same write
order as geartrain (the connection whose input it was first). No other packet, no error handling, no limits, no
stats, no unique keys, no persistence: everything geartrain does beyond this costs time this does not spend. Its
round-trip figure against the C gearmand is what any Python server with real job bookkeeping can hope for on the
machine at hand (docs/performance.md, "The pure-Python floor"):

    ../shared/bench/compare.sh -r 5 -b gearmand \\
        -s 'gearmand=/usr/sbin/gearmand --port {port} --listen 127.0.0.1 --log-file none -t 1 -P {tmpdir}/pid' \\
        -s 'geartrain=.venv/bin/geartrain server --listen 127.0.0.1 --port {port} --store memory --log-file none' \\
        -s 'python-floor@round-trip=.venv/bin/python benchmarks/python_floor.py {port}' \\
        -w '--workload round-trip --clients 16 --workers 4'
"""

from __future__ import annotations

import asyncio
import socket
import struct
import sys
from collections import defaultdict, deque

import uvloop

RES = b"\0RES"
HEADER = struct.Struct(">II")
# Packet types (numbered here, not imported: the floor must not depend on the code it is compared with).
CAN_DO, PRE_SLEEP, NOOP, SUBMIT_JOB, JOB_CREATED = 1, 4, 6, 7, 8
GRAB_JOB, NO_JOB, JOB_ASSIGN, WORK_COMPLETE = 9, 10, 11, 13


class Floor(asyncio.Protocol):
    queues: defaultdict[bytes, deque[tuple[bytes, bytes]]] = defaultdict(deque)  # function -> (handle, data)
    sleepers: defaultdict[bytes, list[Floor]] = defaultdict(list)  # function -> workers asleep
    waiting: dict[bytes, Floor] = {}  # handle -> the client waiting for the result
    jobs = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.held = b""
        self.abilities: list[bytes] = []
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        buf = self.held + data if self.held else data
        end_of_data, pos = len(buf), 0
        replies: list[bytes] = []
        to_others: list[tuple[Floor, bytes]] = []
        pack = HEADER.pack
        while end_of_data - pos >= 12:
            ptype, size = HEADER.unpack_from(buf, pos + 4)
            end = pos + 12 + size
            if end > end_of_data:
                break
            body = buf[pos + 12 : end]
            if ptype == SUBMIT_JOB:
                name, _, rest = body.partition(b"\0")
                Floor.jobs += 1
                handle = b"H:floor:%d" % Floor.jobs
                Floor.queues[name].append((handle, rest.partition(b"\0")[2]))
                Floor.waiting[handle] = self
                replies.append(RES + pack(JOB_CREATED, len(handle)) + handle)
                asleep = Floor.sleepers.get(name)
                if asleep:
                    to_others += [(worker, RES + pack(NOOP, 0)) for worker in asleep]
                    asleep.clear()
            elif ptype == GRAB_JOB:
                for name in self.abilities:
                    queue = Floor.queues.get(name)
                    if queue:
                        handle, workload = queue.popleft()
                        assign = handle + b"\0" + name + b"\0" + workload
                        replies.append(RES + pack(JOB_ASSIGN, len(assign)) + assign)
                        break
                else:
                    replies.append(RES + pack(NO_JOB, 0))
            elif ptype == WORK_COMPLETE:
                client = Floor.waiting.pop(body.partition(b"\0")[0], None)
                if client is not None:
                    to_others.append((client, RES + pack(WORK_COMPLETE, size) + body))
            elif ptype == PRE_SLEEP:
                if any(Floor.queues.get(name) for name in self.abilities):
                    replies.append(RES + pack(NOOP, 0))
                else:
                    for name in self.abilities:
                        Floor.sleepers[name].append(self)
            elif ptype == CAN_DO:
                self.abilities.append(body)
            pos = end
        self.held = buf[pos:] if pos < end_of_data else b""
        if replies:  # this connection first: its sender waits for it (a worker for its next job)
            self.transport.write(b"".join(replies))
        for peer, packet in to_others:
            peer.transport.write(packet)


async def serve(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(Floor, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    uvloop.install()
    asyncio.run(serve(int(sys.argv[1])))
