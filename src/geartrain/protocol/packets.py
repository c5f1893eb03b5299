"""Gearman binary packet types and their argument layouts, as a table.

Every packet is a 12-byte header (magic, type, body size) and a body of NUL-separated arguments. The last argument
is never NUL-terminated and may itself contain NULs (it runs to the end of the body), so a packet with N
arguments is split at its first N-1 NULs.
"""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple

REQ = b"\0REQ"
RES = b"\0RES"
HEADER_SIZE = 12


class PacketType(IntEnum):
    CAN_DO = 1
    CANT_DO = 2
    RESET_ABILITIES = 3
    PRE_SLEEP = 4
    UNUSED = 5
    NOOP = 6
    SUBMIT_JOB = 7
    JOB_CREATED = 8
    GRAB_JOB = 9
    NO_JOB = 10
    JOB_ASSIGN = 11
    WORK_STATUS = 12
    WORK_COMPLETE = 13
    WORK_FAIL = 14
    GET_STATUS = 15
    ECHO_REQ = 16
    ECHO_RES = 17
    SUBMIT_JOB_BG = 18
    ERROR = 19
    STATUS_RES = 20
    SUBMIT_JOB_HIGH = 21
    SET_CLIENT_ID = 22
    CAN_DO_TIMEOUT = 23
    ALL_YOURS = 24
    WORK_EXCEPTION = 25
    OPTION_REQ = 26
    OPTION_RES = 27
    WORK_DATA = 28
    WORK_WARNING = 29
    GRAB_JOB_UNIQ = 30
    JOB_ASSIGN_UNIQ = 31
    SUBMIT_JOB_HIGH_BG = 32
    SUBMIT_JOB_LOW = 33
    SUBMIT_JOB_LOW_BG = 34
    SUBMIT_JOB_SCHED = 35
    SUBMIT_JOB_EPOCH = 36
    SUBMIT_REDUCE_JOB = 37
    SUBMIT_REDUCE_JOB_BACKGROUND = 38
    GRAB_JOB_ALL = 39
    JOB_ASSIGN_ALL = 40
    GET_STATUS_UNIQUE = 41
    STATUS_RES_UNIQUE = 42


MAX_PACKET_TYPE = max(PacketType)

# Number of arguments each packet carries (as libgearman's command table has them).
ARG_COUNT: dict[int, int] = {
    PacketType.CAN_DO: 1,
    PacketType.CANT_DO: 1,
    PacketType.RESET_ABILITIES: 0,
    PacketType.PRE_SLEEP: 0,
    PacketType.UNUSED: 0,
    PacketType.NOOP: 0,
    PacketType.SUBMIT_JOB: 3,
    PacketType.JOB_CREATED: 1,
    PacketType.GRAB_JOB: 0,
    PacketType.NO_JOB: 0,
    PacketType.JOB_ASSIGN: 3,
    PacketType.WORK_STATUS: 3,
    PacketType.WORK_COMPLETE: 2,
    PacketType.WORK_FAIL: 1,
    PacketType.GET_STATUS: 1,
    PacketType.ECHO_REQ: 1,
    PacketType.ECHO_RES: 1,
    PacketType.SUBMIT_JOB_BG: 3,
    PacketType.ERROR: 2,
    PacketType.STATUS_RES: 5,
    PacketType.SUBMIT_JOB_HIGH: 3,
    PacketType.SET_CLIENT_ID: 1,
    PacketType.CAN_DO_TIMEOUT: 2,
    PacketType.ALL_YOURS: 0,
    PacketType.WORK_EXCEPTION: 2,
    PacketType.OPTION_REQ: 1,
    PacketType.OPTION_RES: 1,
    PacketType.WORK_DATA: 2,
    PacketType.WORK_WARNING: 2,
    PacketType.GRAB_JOB_UNIQ: 0,
    PacketType.JOB_ASSIGN_UNIQ: 4,
    PacketType.SUBMIT_JOB_HIGH_BG: 3,
    PacketType.SUBMIT_JOB_LOW: 3,
    PacketType.SUBMIT_JOB_LOW_BG: 3,
    PacketType.SUBMIT_JOB_SCHED: 8,
    PacketType.SUBMIT_JOB_EPOCH: 4,
    PacketType.SUBMIT_REDUCE_JOB: 5,
    PacketType.SUBMIT_REDUCE_JOB_BACKGROUND: 5,
    PacketType.GRAB_JOB_ALL: 0,
    PacketType.JOB_ASSIGN_ALL: 5,
    PacketType.GET_STATUS_UNIQUE: 1,
    PacketType.STATUS_RES_UNIQUE: 6,
}

# Fewest arguments accepted. The reduce submits are documented with 3 NULs (PROTOCOL) but libgearman sends 4; a
# 4-field body is taken as (function, unique, reducer, data) with an empty aggregator.
MIN_ARG_COUNT: dict[int, int] = dict(ARG_COUNT)
MIN_ARG_COUNT[PacketType.SUBMIT_REDUCE_JOB] = 4
MIN_ARG_COUNT[PacketType.SUBMIT_REDUCE_JOB_BACKGROUND] = 4

# Types a server accepts (magic \0REQ). Everything else, though well framed, is "Command not expected".
REQUEST_TYPES: frozenset[int] = frozenset(
    {
        PacketType.CAN_DO,
        PacketType.CANT_DO,
        PacketType.RESET_ABILITIES,
        PacketType.PRE_SLEEP,
        PacketType.SUBMIT_JOB,
        PacketType.GRAB_JOB,
        PacketType.WORK_STATUS,
        PacketType.WORK_COMPLETE,
        PacketType.WORK_FAIL,
        PacketType.GET_STATUS,
        PacketType.ECHO_REQ,
        PacketType.SUBMIT_JOB_BG,
        PacketType.SUBMIT_JOB_HIGH,
        PacketType.SET_CLIENT_ID,
        PacketType.CAN_DO_TIMEOUT,
        PacketType.WORK_EXCEPTION,
        PacketType.OPTION_REQ,
        PacketType.WORK_DATA,
        PacketType.WORK_WARNING,
        PacketType.GRAB_JOB_UNIQ,
        PacketType.SUBMIT_JOB_HIGH_BG,
        PacketType.SUBMIT_JOB_LOW,
        PacketType.SUBMIT_JOB_LOW_BG,
        PacketType.SUBMIT_JOB_EPOCH,
        PacketType.SUBMIT_REDUCE_JOB,
        PacketType.SUBMIT_REDUCE_JOB_BACKGROUND,
        PacketType.GRAB_JOB_ALL,
        PacketType.GET_STATUS_UNIQUE,
    }
)


class Priority(IntEnum):
    """Queue priorities; the values are gearmand's persistent encoding (0 = HIGH, 1 = NORMAL, 2 = LOW)."""

    HIGH = 0
    NORMAL = 1
    LOW = 2


class Packet(NamedTuple):
    """A decoded binary packet: its type and its arguments (as many as :data:`ARG_COUNT` says)."""

    type: int
    args: tuple[bytes, ...]


class AdminLine(NamedTuple):
    """One line of the text admin protocol, without its line end (``\\n`` and one ``\\r`` before it)."""

    line: bytes
