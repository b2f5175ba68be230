"""JSON string literals built on UTF-8 bytes (`syncd.jsontext`) and the envelope splice built with
them (`envelopes.spliced_body`): the same bytes as json's own encoder, for any text, short or
long, with every character JSON escapes; the splice equal to the plain one it replaced, which is
kept here as the reference."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.errors import StoreError
from syncd.jsontext import literal
from syncd.storage.envelopes import (
    ENTRY_LEFT_OUT,
    VERSION_FIELDS,
    spliced,
    spliced_body,
    version_entry,
)
from syncd.storage.rows import dump

# Any code point, lone surrogates included, with the characters JSON escapes made likely.
ESCAPED = '"\\\n\r\t\b\f\x00\x01\x1f\x7f/<>&é€\u2028😀'
ANY_TEXT = st.text(alphabet=st.sampled_from(ESCAPED) | st.characters(codec=None))
# What a store can hold: no lone surrogate (SQLite and PostgreSQL both refuse one).
STORABLE = st.text(alphabet=st.sampled_from(ESCAPED) | st.characters(codec="utf-8"))
LONG = st.text(alphabet=st.sampled_from(ESCAPED) | st.characters(codec="utf-8"), min_size=129)


def reference(text: str, errors: str = "surrogatepass") -> bytes:
    return json.dumps(text, ensure_ascii=False).encode("utf-8", errors)


@settings(max_examples=1000, deadline=None)
@given(ANY_TEXT)
def test_a_literal_is_json_dumps_encoded(text: str) -> None:
    assert literal(text) == reference(text)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from('"\\\n\r\té😀') | st.characters(codec="utf-8")))
def test_an_xml_texts_literal_is_json_dumps_encoded(text: str) -> None:
    text = text.translate({c: None for c in range(0x20) if c not in (0x09, 0x0A, 0x0D)})
    assert literal(text, xml=True) == reference(text)


def test_every_control_character_is_escaped_as_json_does() -> None:
    text = "".join(map(chr, range(0x80))) * 3
    assert literal(text) == reference(text)
    assert literal(text, errors="strict") == reference(text)


def test_strict_refuses_a_lone_surrogate_as_str_encode_does() -> None:
    with pytest.raises(UnicodeEncodeError):
        literal("a\ud800b", errors="strict")
    assert literal("a\ud800b") == reference("a\ud800b")


def plain_spliced(row: dict[str, Any]) -> bytes:
    """The splice as it was built before spliced_body: the version's entry dumped whole."""
    payload: str = row["payload"]
    if row["version_id"] is None:
        return payload.encode()
    return payload.replace(ENTRY_LEFT_OUT, '"entry":' + dump(version_entry(row, "v_")), 1).encode()


def json_list(values: st.SearchStrategy[Any]) -> st.SearchStrategy[str | None]:
    """A version's authors or categories column: compact JSON as the store writes it, or NULL."""
    return st.none() | st.lists(values, max_size=3).map(dump)


@st.composite
def version_rows(draw: st.DrawFn) -> dict[str, Any]:
    text = st.none() | STORABLE | LONG
    row: dict[str, Any] = {f"v_{c}": draw(text) for c in VERSION_FIELDS}
    row["v_entry_id"] = draw(STORABLE | LONG)
    # A column SQLite's dynamic typing could hand back as a number (a hand edit).
    row["v_base_url"] = draw(text | st.integers() | st.floats(allow_nan=False))
    person = st.fixed_dictionaries({"name": st.none() | STORABLE, "email": st.none() | STORABLE})
    row["v_authors"] = draw(json_list(person))
    row["v_categories"] = draw(json_list(STORABLE | LONG))
    return row


@settings(max_examples=500, deadline=None)
@given(version_rows(), STORABLE, st.integers(0, 2**53))
def test_the_bytes_splice_is_the_plain_splice(
    version: dict[str, Any], title: str, seq: int
) -> None:
    payload = dump(
        {
            "id": "evt",
            "type": "entry.updated",
            "data": {"seq": seq, "feed": {"title": title}, "entry": None, "after": title},
        }
    )
    assert ENTRY_LEFT_OUT in payload
    row = {"payload": payload, "version_id": 3, **version}
    expected = plain_spliced(row)
    assert spliced_body(payload.encode(), row) == expected
    assert spliced(row) == expected.decode()
    json.loads(expected)  # and it is one JSON document


def test_an_event_stored_whole_is_sent_as_stored() -> None:
    payload = '{"data":{"entry":{"id":"x"}}}'
    row = {"payload": payload, "version_id": None}
    assert spliced_body(payload.encode(), row) == payload.encode()
    assert spliced(row) == payload


def test_a_missing_version_is_refused_on_both_forms() -> None:
    row = {"payload": '{"entry":null}', "version_id": 9, "v_entry_id": None}
    with pytest.raises(StoreError, match="version 9 is missing"):
        spliced_body(b'{"entry":null}', row)
    with pytest.raises(StoreError, match="version 9 is missing"):
        spliced(row)
