"""`syncd export`: a feed's whole mirrored history as one document, written as it is read.

Atom 1.0: one `<feed>` (marked RFC 5005 `fh:complete`: it lists every entry the mirror has)
whose entries carry everything syncd stores of them (id, title, links, authors, categories,
published, updated, summary, content), so that syncd reading the document back gets the same
entries; deleted entries, when asked for, are RFC 6721 `at:deleted-entry` tombstones. JSON
Lines: one object per entry (`ENTRY_FIELDS`). Both are written entry by entry to a byte stream
(lxml's incremental `xmlfile` for Atom): memory does not grow with the feed.

Formats bytes only: reads no store (`Store.feed_history` does) and opens no file.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterable
from datetime import datetime
from typing import Any, BinaryIO

from lxml import etree

from syncd import __version__
from syncd.model import Link
from syncd.storage.reports import ArchivedEntry, FeedHead
from syncd.timestamps import to_text

__all__ = ["ENTRY_FIELDS", "entry_record", "write_atom", "write_jsonl"]

ATOM_NS = "http://www.w3.org/2005/Atom"
TOMBSTONE_NS = "http://purl.org/atompub/tombstones/1.0"  # RFC 6721
HISTORY_NS = "http://purl.org/syndication/history/1.0"  # RFC 5005
GENERATOR_URI = "https://github.com/syncd/syncd"
_ATOM_ONLY: Any = {None: ATOM_NS}  # lxml takes None for the default namespace

# The fields of a JSON Lines record, in order (README "Export" documents them).
ENTRY_FIELDS = (
    "feed",
    "id",
    "title",
    "link",
    "published",
    "updated",
    "authors",
    "categories",
    "summary",
    "content",
    "links",
    "base_url",
    "first_seen",
    "last_seen",
    "revision",
    "deleted_at",
    "deleted_reason",
)

# Characters XML 1.0 cannot carry at all: a stored string with one (from a leniently read page)
# must not stop the export halfway.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _x(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)


def _a(tag: str) -> str:
    return f"{{{ATOM_NS}}}{tag}"


def entry_record(feed: str, e: ArchivedEntry) -> dict[str, Any]:
    """One entry as a JSON Lines record (`ENTRY_FIELDS`)."""
    return {
        "feed": feed,
        "id": e.entry_id,
        "title": e.title,
        "link": e.link,
        "published": to_text(e.published),
        "updated": to_text(e.updated),
        "authors": [{"name": p.name, "email": p.email, "uri": p.uri} for p in e.authors],
        "categories": list(e.categories),
        "summary": e.summary,
        "content": e.content,
        "links": [
            {"href": x.href, "rel": x.rel, "type": x.type, "title": x.title, "length": x.length}
            for x in e.links
        ],
        "base_url": e.base_url,
        "first_seen": to_text(e.first_seen),
        "last_seen": to_text(e.last_seen),
        "revision": e.revision,
        "deleted_at": to_text(e.deleted_at),
        "deleted_reason": e.deleted_reason,
    }


async def write_jsonl(out: BinaryIO, feed: FeedHead, entries: AsyncIterable[ArchivedEntry]) -> int:
    """One line per entry; returns how many were written."""
    n = 0
    async for e in entries:
        line = json.dumps(entry_record(feed.name, e), ensure_ascii=False, separators=(",", ":"))
        out.write(line.encode() + b"\n")
        n += 1
    return n


async def write_atom(
    out: BinaryIO, feed: FeedHead, entries: AsyncIterable[ArchivedEntry], *, now: datetime
) -> int:
    """The feed as one Atom 1.0 document; returns how many entries (and tombstones) it holds."""
    n = 0
    nsmap = {None: ATOM_NS, "at": TOMBSTONE_NS, "fh": HISTORY_NS}
    with etree.xmlfile(out, encoding="utf-8") as xf:
        xf.write_declaration()
        with xf.element(_a("feed"), nsmap=nsmap):
            xf.write(_text("id", feed.url), "\n")
            xf.write(_text("title", feed.title or feed.name), "\n")
            xf.write(_text("updated", to_text(feed.newest_updated or now)), "\n")
            xf.write(etree.Element(_a("link"), rel="via", href=feed.url, nsmap=_ATOM_ONLY), "\n")
            generator = _text("generator", "syncd")
            generator.set("uri", GENERATOR_URI)
            generator.set("version", __version__)
            xf.write(generator, "\n")
            # Every entry the mirror holds is here: absence from this document means deletion.
            xf.write(etree.Element(f"{{{HISTORY_NS}}}complete", nsmap={"fh": HISTORY_NS}), "\n")
            async for e in entries:
                xf.write(_tombstone(e) if e.deleted_at else _entry(e), "\n")
                n += 1
    return n


def _text(tag: str, value: str | None, kind: str | None = None) -> etree._Element:
    # Written on its own, an element declares its namespace itself: as the default one, so the
    # document reads like any Atom feed (no ns0: prefixes, which parsers handle unevenly).
    element = etree.Element(_a(tag), {"type": kind} if kind else {}, nsmap=_ATOM_ONLY)
    element.text = _x(value or "")
    return element


def _entry(e: ArchivedEntry) -> etree._Element:
    entry = etree.Element(_a("entry"), nsmap=_ATOM_ONLY)
    entry.append(_text("id", e.entry_id))
    # "text": the title is stored as read (markup already decoded), so it is written as is.
    entry.append(_text("title", e.title, kind="text"))
    # Atom requires <updated>; an entry that had none gets its published time (or when syncd
    # first saw it), which is what a reader would show for it anyway.
    updated = e.updated or e.published or e.first_seen
    entry.append(_text("updated", to_text(updated)))
    if e.published is not None:
        entry.append(_text("published", to_text(e.published)))
    for p in e.authors:
        author = etree.SubElement(entry, _a("author"))
        for part, value in (("name", p.name), ("email", p.email), ("uri", p.uri)):
            if value is not None:
                author.append(_text(part, value))
    links = list(e.links)
    if e.link and not any(x.href == e.link and x.rel == "alternate" for x in links):
        links.insert(0, Link(href=e.link))  # an RSS <link> without a links list
    for x in links:
        attrs = {"rel": x.rel, "href": x.href}
        attrs.update({k: v for k, v in (("type", x.type), ("title", x.title)) if v is not None})
        if x.length is not None:
            attrs["length"] = x.length
        etree.SubElement(entry, _a("link"), {k: _x(v) for k, v in attrs.items()})
    for term in e.categories:
        etree.SubElement(entry, _a("category"), term=_x(term))
    if e.summary is not None:
        entry.append(_text("summary", e.summary, kind="html"))
    if e.content is not None:
        entry.append(_text("content", e.content, kind="html"))
    return entry


def _tombstone(e: ArchivedEntry) -> etree._Element:
    stone = etree.Element(
        f"{{{TOMBSTONE_NS}}}deleted-entry",
        ref=_x(e.entry_id),
        when=to_text(e.deleted_at) or "",
        nsmap={"at": TOMBSTONE_NS},
    )
    if e.deleted_reason:
        comment = etree.SubElement(stone, f"{{{TOMBSTONE_NS}}}comment")
        comment.text = _x(e.deleted_reason)
    return stone
