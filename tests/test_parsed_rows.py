"""The edit skip's by-key read builds each row's `ParsedEntry` with one decoding per distinct
JSON text of the read (`rows.parsed_entries_by_key`). Checked against the plain per-row decoding
it replaced and against the entries the rows were written from (generated entries whose
authors, categories and links repeat among them, any unicode)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.model import Change, ChangeKind, Link, ParsedEntry, Person
from syncd.storage.rows import PARSED_COLUMNS, entry_values, parsed_entries_by_key
from syncd.timestamps import from_text
from tests.test_envelopes import OPTIONAL, STAMP, TEXT

PERSONS = st.lists(st.builds(Person, OPTIONAL, OPTIONAL, OPTIONAL), max_size=3).map(tuple)
CATEGORIES = st.lists(TEXT, max_size=3).map(tuple)
LINKS = st.lists(st.builds(Link, TEXT, TEXT, OPTIONAL, OPTIONAL, OPTIONAL), max_size=4).map(tuple)


def plain(r: dict[str, Any]) -> ParsedEntry:
    """The reading before: each row on its own, `json.loads` and a constructor per object."""
    links = r["links"]
    return ParsedEntry(
        entry_id=r["entry_id"],
        id_source=r["id_source"],
        title=r["title"],
        link=r["link"],
        published=from_text(r["published"]),
        updated=from_text(r["updated"]),
        authors=tuple(Person(**p) for p in json.loads(r["authors"])),
        categories=tuple(json.loads(r["categories"])),
        summary=r["summary"],
        content=r["content"],
        links=() if links is None else tuple(Link(**link) for link in json.loads(links)),
        base_url=r["base_url"],
        content_hash=r["content_hash"],
    )


@st.composite
def pages(draw: st.DrawFn) -> list[ParsedEntry]:
    """Entries that share their lists from small pools, as a feed's entries share an author."""
    authors = draw(st.lists(PERSONS, min_size=1, max_size=3))
    categories = draw(st.lists(CATEGORIES, min_size=1, max_size=3))
    links = draw(st.lists(LINKS, min_size=1, max_size=3))
    count = draw(st.integers(0, 8))
    return [
        ParsedEntry(
            entry_id=f"id{i}",
            id_source="id",
            title=draw(OPTIONAL),
            link=draw(OPTIONAL),
            published=draw(STAMP),
            updated=draw(STAMP),
            authors=draw(st.sampled_from(authors)),
            categories=draw(st.sampled_from(categories)),
            summary=draw(OPTIONAL),
            content=draw(OPTIONAL),
            links=draw(st.sampled_from(links)),
            base_url=draw(OPTIONAL),
            content_hash=draw(st.text("0123456789abcdef", min_size=1, max_size=8)),
        )
        for i in range(count)
    ]


def stored_rows(entries: list[ParsedEntry]) -> list[dict[str, Any]]:
    """The PARSED_COLUMNS of each entry's row, as `entry_values` writes them."""
    columns = [c.strip() for c in PARSED_COLUMNS.split(",")]
    out = []
    for i, e in enumerate(entries):
        values = entry_values(1, Change(ChangeKind.CREATED, e, None), "2026-06-01T12:00:00.000Z")
        out.append({c: values.get(c) for c in columns} | {"parse_key": f"key{i}"})
    return out


@settings(max_examples=300, deadline=None)
@given(pages(), pages())
def test_a_read_gives_each_row_as_written_and_as_the_plain_reading(
    first: list[ParsedEntry], second: list[ParsedEntry]
) -> None:
    for entries in (first, second):
        rows = stored_rows(entries)
        read = parsed_entries_by_key(rows)
        assert list(read) == [r["parse_key"] for r in rows]
        assert list(read.values()) == entries
        assert [repr(e) for e in read.values()] == [repr(plain(r)) for r in rows]


def test_an_absent_links_column_reads_as_no_links() -> None:
    # A row written before links were stored: no list, as the plain reading gives it.
    bare = ParsedEntry("a", "id", None, None, None, None, (), (), None, None, (), None, "0")
    (row,) = stored_rows([bare])
    row["links"] = None
    assert parsed_entries_by_key([row])["key0"] == plain(row)
    assert parsed_entries_by_key([row])["key0"].links == ()
