"""Names in text columns: any bytes round-trip, plain UTF-8 is untouched, and nothing grows in characters."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from geartrain.store.textcodec import bytes_to_text, text_to_bytes

pytestmark = pytest.mark.stores


@given(st.binary(max_size=300))
def test_any_bytes_round_trip_in_no_more_characters(value: bytes) -> None:
    text = bytes_to_text(value)
    assert text_to_bytes(text) == value
    assert len(text) <= len(value)  # fits any VARCHAR(n) the raw bytes would fit
    assert "\0" not in text  # PostgreSQL text cannot hold NUL
    text.encode("utf-8")  # valid UTF-8 (no lone surrogates)


@given(st.text(st.characters(blacklist_characters="\0", blacklist_categories=("Cs",))))
def test_plain_utf8_is_stored_as_it_is(text: str) -> None:
    if any(0xF700 <= ord(char) <= 0xF7FF for char in text):
        return  # the escape range itself is escaped (see the module docstring)
    assert bytes_to_text(text.encode()) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (b"resize-image", "resize-image"),
        (b"\xff", "\uf7ff"),
        (b"a\0b", "a\uf700b"),
        (b"\xc3(", "\uf7c3("),
        ("\uf701".encode(), "\uf7ef\uf79c\uf781"),
    ],
)
def test_examples(value: bytes, text: str) -> None:
    assert bytes_to_text(value) == text
    assert text_to_bytes(text) == value
