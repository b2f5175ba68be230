"""`fastparse._Reader.attrs` against the implementations it replaced (kept here as references).

The attributes of an element as feedparser keys them (lower-cased local names, namespace
dropped, a clash declined) decide what every entry and link reads, so a faster spelling must
give the same dictionary, in the same order, or the same decline, for any attribute set and any
sequence of elements through one reader (its memo carries over).
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from syncd.fastparse import _Decline, _Reader

NAMESPACES = {"x": "http://example.com/x", "dc": "http://purl.org/dc/elements/1.1/"}
NAMES = (
    "rel",
    "href",
    "type",
    "title",
    "Rel",
    "HREF",
    "x:rel",
    "x:Title",
    "dc:type",
    "xml:lang",
    "lang",
    "term",
    "scheme",
    "label",
)
VALUES = ("", "a", "http://e.test/p?a=1&amp;b=2", "caf\u00e9", "&#10;line", " spaced ")


def reference_loop(reader: _Reader, el: Any) -> dict[str, str]:
    """Before 2b4e305: each name through the memo, over el.attrib."""
    result: dict[str, str] = {}
    known: dict[str, str] = {}
    for key, value in el.attrib.items():
        local = known.get(key)
        if local is None:
            local = known[key] = key.rsplit("}", 1)[-1].lower()
        if local in result:
            raise _Decline(f"two attributes named {local!r}")
        result[local] = value
    return result


def reference_plain_sets(el: Any, plain_sets: dict[tuple[str, ...], bool]) -> dict[str, str]:
    """2b4e305's: a set of plain names taken as it is, else the loop."""
    result: dict[str, str] = dict(el.attrib)
    names = tuple(result)
    plain = plain_sets.get(names)
    if plain is None:
        plain = plain_sets[names] = all(key.rsplit("}", 1)[-1].lower() == key for key in names)
    if plain:
        return result
    return reference_loop(_Reader([], c1=False), el)


def outcome(read: Any) -> tuple[str, Any]:
    try:
        result = read()
    except _Decline as exc:
        return "declined", str(exc)
    return "read", list(result.items())  # the order too


elements = st.lists(
    st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from(VALUES)), max_size=5),
    min_size=1,
    max_size=6,
)


@settings(max_examples=300)
@given(elements=elements)
def test_attrs_as_the_references_key_them(elements: list[list[tuple[str, str]]]) -> None:
    body = "".join(
        "<e " + " ".join(f'{name}="{value}"' for name, value in dict(attrs).items()) + "/>"
        for attrs in elements
    )
    declared = " ".join(f'xmlns:{p}="{uri}"' for p, uri in NAMESPACES.items())
    root = etree.fromstring(f"<r {declared}>{body}</r>".encode())
    reader = _Reader(list(NAMESPACES.items()), c1=False)  # one reader: its memo carries over
    plain_sets: dict[tuple[str, ...], bool] = {}
    for el in root:
        got = outcome(lambda el=el: reader.attrs(el))
        assert got == outcome(lambda el=el: reference_loop(reader, el))
        assert got == outcome(lambda el=el: reference_plain_sets(el, plain_sets))


def test_a_clash_after_lower_casing_is_declined() -> None:
    root = etree.fromstring(b'<r xmlns:x="http://example.com/x"><e rel="a" x:REL="b"/></r>')
    reader = _Reader([("x", "http://example.com/x")], c1=False)
    assert outcome(lambda: reader.attrs(root[0])) == ("declined", "two attributes named 'rel'")
