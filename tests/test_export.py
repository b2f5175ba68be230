"""`syncd export`: a feed's whole mirrored history as one document. The Atom export is proved by
a round trip: exported from one store, served from a local server, synced into a second store,
every entry comes back the same (ids, updated to the millisecond, titles, links, authors,
categories, summaries, content), the newest version of an edited entry included and a deleted
one left out (or, asked for, a tombstone); the JSON Lines export is one documented record per
entry."""

from __future__ import annotations

import json
import os
from pathlib import Path

from lxml import etree

from syncd.export import ENTRY_FIELDS
from tests.conftest import db_rows, syncd, write_config
from tests.support.documents import serve_documents
from tests.support.feedserver import BloggerFeed, serve_feed

ATOM = "{http://www.w3.org/2005/Atom}"
COMPARED = "entry_id, updated, published, title, link, authors, categories, summary, content, links"


def entries(db: Path) -> list[tuple[object, ...]]:
    return db_rows(db, f"SELECT {COMPARED} FROM entries WHERE deleted_at IS NULL ORDER BY 1")


async def test_atom_export_round_trips_and_jsonl_has_one_record_per_entry(
    tmp_path: Path,
) -> None:
    feed = BloggerFeed(60)  # three pages of 25: the export merges them
    (tmp_path / "a").mkdir()
    async with serve_feed(feed) as server:
        config = write_config(tmp_path / "a", feeds=[{"name": "blog", "url": server.url}])
        assert (await syncd(config, "sync")).code == 0
        edited, gone = feed.ids()[30], feed.ids()[5]
        feed.edit_entry(edited, title="Edited <again> & again", content="<p>the new text</p>")
        feed.delete_entry(gone)
        assert (await syncd(config, "sync", "--full")).code == 0
    db_a = tmp_path / "a" / "syncd.db"
    assert db_rows(db_a, "SELECT COUNT(*) FROM entry_versions WHERE entry_id = ?", (edited,)) == [
        (2,)
    ]
    assert db_rows(db_a, "SELECT deleted_at IS NOT NULL FROM entries WHERE entry_id = ?", (gone,))[
        0
    ] == (1,)

    atom = tmp_path / "blog.atom"
    result = await syncd(config, "export", "--feed", "blog", "--format", "atom", "-o", str(atom))
    assert result.code == 0, result.stderr
    root = etree.fromstring(atom.read_bytes())
    # Atom 1.0's required elements: the feed's id, title, updated; each entry's too.
    assert root.tag == f"{ATOM}feed"
    assert all(root.find(f"{ATOM}{t}") is not None for t in ("id", "title", "updated"))
    atom_entries = root.findall(f"{ATOM}entry")
    assert len(atom_entries) == 59
    for e in atom_entries:
        assert all(e.find(f"{ATOM}{t}") is not None for t in ("id", "title", "updated"))
    assert root.findtext(f"{ATOM}title") == "Google Research Blog"

    # Served and synced into a second store, it gives back the same entries.
    async with serve_documents({"/blog.atom": atom.read_bytes()}) as base:
        (tmp_path / "b").mkdir()
        copy = write_config(tmp_path / "b", feeds=[{"name": "copy", "url": f"{base}/blog.atom"}])
        synced = await syncd(copy, "sync")
        assert synced.code == 0, synced.stderr
    original, copied = entries(db_a), entries(tmp_path / "b" / "syncd.db")
    assert len(original) == 59 and copied == original
    (title,) = [r[3] for r in copied if r[0] == edited]
    assert title == "Edited <again> & again"

    # Deleted entries, when asked for: an RFC 6721 tombstone in Atom, a full record in JSONL.
    with_deleted = await syncd(
        config, "export", "--feed", "blog", "--format", "atom", "--include-deleted"
    )
    stones = etree.fromstring(with_deleted.stdout.encode()).findall(
        "{http://purl.org/atompub/tombstones/1.0}deleted-entry"
    )
    assert [s.get("ref") for s in stones] == [gone]

    lines = await syncd(
        config, "export", "--feed", "blog", "--format", "jsonl", "--include-deleted"
    )
    assert lines.code == 0, lines.stderr
    records = [json.loads(line) for line in lines.stdout.splitlines()]
    assert len(records) == 60 and all(tuple(r) == ENTRY_FIELDS for r in records)
    by_id = {r["id"]: r for r in records}
    assert by_id[gone]["deleted_at"] and by_id[gone]["deleted_reason"] == "counted-complete-crawl"
    assert by_id[edited]["content"] == "<p>the new text</p>" and by_id[edited]["revision"] == 2
    row = db_rows(db_a, "SELECT updated, content FROM entries WHERE entry_id = ?", (edited,))
    assert (by_id[edited]["updated"], by_id[edited]["content"]) == row[0]


async def test_export_names_what_is_wrong(tmp_path: Path) -> None:
    async with serve_feed(BloggerFeed(2)) as server:
        config = write_config(tmp_path, feeds=[{"name": "blog", "url": server.url}])
        missing = await syncd(config, "export", "--feed", "blog", "--format", "jsonl")
        assert missing.code == 1 and "no database at" in missing.stderr
        assert (await syncd(config, "sync")).code == 0
    unknown = await syncd(config, "export", "--feed", "nope", "--format", "atom")
    assert unknown.code == 2
    assert unknown.stderr.strip() == "syncd: no feed named 'nope' in the store (it has: blog)"
    # A failed export leaves no partial file behind; a good one replaces it whole.
    out = tmp_path / "out.jsonl"
    assert (
        await syncd(config, "export", "--feed", "nope", "--format", "jsonl", "-o", str(out))
    ).code
    assert not [name for name in os.listdir(tmp_path) if "out.jsonl" in name]
    good = await syncd(config, "export", "--feed", "blog", "--format", "jsonl", "-o", str(out))
    assert good.code == 0 and len(out.read_text().splitlines()) == 2
    assert good.stderr.strip().endswith(f"2 entries of blog written to {out}")
