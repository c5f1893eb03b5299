"""Names and keys in database text columns (MySQL, PostgreSQL): bytes in, text out, and back unchanged.

gearmand's tables keep ``unique_key`` and ``function_name`` as VARCHAR, and gearmand reads them as text, so the
columns cannot become binary. On the wire, though, a name is any bytes. PostgreSQL text cannot hold NUL or invalid
UTF-8, and MySQL's utf8mb4 columns reject invalid UTF-8. So a value is stored as:

* its UTF-8 text, unchanged, when it is valid UTF-8 without NUL and without characters U+F700..U+F7FF (every name
  gearmand itself can store, so rows stay readable by gearmand and gearmand's rows read back as they are);
* otherwise, every byte that is not part of such a plain character (NUL, bytes of invalid sequences, and the bytes
  of any U+F7xx character) becomes the private-use character U+F700 + byte.

Decoding turns every U+F7xx character back into its byte. This is why the escape uses one character per byte rather
than a marker plus hex or base64: the text never has more characters than the value has bytes, so anything that fits
gearmand's ``VARCHAR(64)`` / ``VARCHAR(255)`` as bytes also fits escaped (hex or base64 would not). The price is that
a real U+F7xx character (Apple's private function-key range, never seen in job names) is itself stored escaped.
U+F700..U+F7FF lies in the Basic Multilingual Plane, so it also fits MySQL's older three-byte ``utf8`` columns.
"""

from __future__ import annotations

import re

ESCAPE_BASE = 0xF700
_NEEDS_ESCAPE = re.compile("[\x00\uf700-\uf7ff]")
_ESCAPED = re.compile("[\uf700-\uf7ff]")
_LONE_SURROGATE_BASE = 0xDC00  # Python's surrogateescape puts byte b (0x80..0xFF) at U+DC00 + b


def bytes_to_text(value: bytes) -> str:
    """The text column value for ``value`` (see the module docstring)."""
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        if not _NEEDS_ESCAPE.search(text):
            return text
    out: list[str] = []
    for char in value.decode("utf-8", "surrogateescape"):
        code = ord(char)
        if 0xDC80 <= code <= 0xDCFF:  # a byte that is not valid UTF-8
            out.append(chr(ESCAPE_BASE + code - _LONE_SURROGATE_BASE))
        elif code == 0 or ESCAPE_BASE <= code <= ESCAPE_BASE + 0xFF:  # NUL, or a real character in our range
            out.extend(chr(ESCAPE_BASE + byte) for byte in char.encode("utf-8"))
        else:
            out.append(char)
    return "".join(out)


def text_to_bytes(text: str) -> bytes:
    """The bytes a text column value stands for (inverse of :func:`bytes_to_text`)."""
    if not _ESCAPED.search(text):
        return text.encode("utf-8")
    out = bytearray()
    for char in text:
        code = ord(char)
        if ESCAPE_BASE <= code <= ESCAPE_BASE + 0xFF:
            out.append(code - ESCAPE_BASE)
        else:
            out += char.encode("utf-8")
    return bytes(out)
