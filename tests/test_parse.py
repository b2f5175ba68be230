"""syncd.parse: golden pages, identity, timestamps, the content hash, refusals (§4.4-4.6, §7).

The expected JSON files under tests/data were generated once by `regenerate()` below and then
checked by hand against the XML; `test_seed_agrees_with_an_independent_xml_reading` re-checks the
seed against ElementTree on every run. Regenerate only when a change is intended, and review the
diff: a changed content_hash means every stored entry would look edited after an upgrade.

    .venv/bin/python -c "from tests.test_parse import regenerate; regenerate()"
"""

from __future__ import annotations

import hashlib
import json
import re
import tracemalloc
import xml.etree.ElementTree as ET
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import syncd.parse
from syncd.errors import ParseError
from syncd.model import Link, ParsedEntry, ParsedPage, Person
from syncd.parse import HASH_FIELDS, content_hash, guess_next_url, parse_page, strip_doctype
from syncd.timestamps import format_timestamp

DATA = Path(__file__).parent / "data"
SEED = DATA / "google-research-blog-page1.atom.xml"
SEED_URL = "http://feeds.feedburner.com/blogspot/gJZg"
ATOM_HEADERS = {"content-type": "application/atom+xml; charset=UTF-8"}
FIRST_ID = "tag:blogger.com,1999:blog-21224994.post-4375052421920196613"


@dataclass(frozen=True)
class Fixture:
    xml: str
    expected: str
    url: str
    headers: dict[str, str]
    full_content: bool  # small fixtures pin the content text itself, the seed only its length


FIXTURES = [
    Fixture(
        "google-research-blog-page1.atom.xml",
        "google-research-blog-page1.expected.json",
        SEED_URL,
        ATOM_HEADERS,
        full_content=False,
    ),
    Fixture(
        "rss2.xml",
        "rss2.expected.json",
        "https://rss.example.com/feed.xml",
        {"content-type": "application/rss+xml"},
        full_content=True,
    ),
    Fixture(
        "rss1-rdf.xml",
        "rss1-rdf.expected.json",
        "https://rdf.example.org/index.rdf",
        {"content-type": "application/rdf+xml"},
        full_content=True,
    ),
    Fixture(
        "atom-complete.xml",
        "atom-complete.expected.json",
        "https://atom.example.net/blog/feed.atom",
        {"content-type": "application/atom+xml"},
        full_content=True,
    ),
    Fixture(
        "atom-archive.xml",
        "atom-archive.expected.json",
        "https://archive.example.com/feeds/2023.atom",
        {"content-type": "application/atom+xml"},
        full_content=True,
    ),
]


def _ts(value: datetime | None) -> str | None:
    return format_timestamp(value) if value is not None else None


def golden(page: ParsedPage, *, full_content: bool) -> dict[str, Any]:
    """The JSON-able view of a page that the expected files hold."""

    def entry(e: ParsedEntry) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": e.entry_id,
            "id_source": e.id_source,
            "title": e.title,
            "link": e.link,
            "published": _ts(e.published),
            "updated": _ts(e.updated),
            "authors": [{"name": a.name, "email": a.email, "uri": a.uri} for a in e.authors],
            "categories": list(e.categories),
            "content_hash": e.content_hash,
            "content_length": len(e.content) if e.content is not None else None,
            "summary": e.summary,
            "base_url": e.base_url,
            "links": [
                {"href": k.href, "rel": k.rel, "type": k.type, "title": k.title, "length": k.length}
                for k in e.links
            ],
        }
        if full_content:
            out["content"] = e.content
        return out

    return {
        "url": page.url,
        "feed_title": page.feed_title,
        "next_url": page.next_url,
        "total_results": page.total_results,
        "complete": page.complete,
        "archive": page.archive,
        "prev_archive_url": page.prev_archive_url,
        "malformed": page.malformed,
        "tombstones": [{"ref": t.ref, "when": _ts(t.when)} for t in page.tombstones],
        "warnings": list(page.warnings),
        "entries": [entry(e) for e in page.entries],
    }


def parse_fixture(fixture: Fixture) -> ParsedPage:
    return parse_page((DATA / fixture.xml).read_bytes(), url=fixture.url, headers=fixture.headers)


def regenerate() -> None:
    """Rewrite the expected files from the current code (then review the diff by hand)."""
    for fixture in FIXTURES:
        data = golden(parse_fixture(fixture), full_content=fixture.full_content)
        text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
        (DATA / fixture.expected).write_text(text, encoding="utf-8")


def seed_page() -> ParsedPage:
    return parse_page(SEED.read_bytes(), url=SEED_URL, headers=ATOM_HEADERS)


def atom(entries: str, *, feed_extra: str = "", namespaces: str = "") -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        f'<feed xmlns="http://www.w3.org/2005/Atom" {namespaces}>'
        f"<title>Test feed</title><id>urn:test:feed</id>{feed_extra}{entries}</feed>"
    ).encode()


def parse_atom(body: bytes, **kwargs: Any) -> ParsedPage:
    return parse_page(body, url="https://example.com/feed", headers=ATOM_HEADERS, **kwargs)


def only_entry(page: ParsedPage) -> ParsedEntry:
    assert len(page.entries) == 1
    return page.entries[0]


def by_id(page: ParsedPage) -> dict[str, ParsedEntry]:
    return {e.entry_id: e for e in page.entries}


# --- golden files -------------------------------------------------------------------------------


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda f: f.xml)
def test_golden(fixture: Fixture) -> None:
    expected = json.loads((DATA / fixture.expected).read_text(encoding="utf-8"))
    assert golden(parse_fixture(fixture), full_content=fixture.full_content) == expected


def test_seed_page_level_facts() -> None:
    page = seed_page()
    assert page.url == SEED_URL
    assert page.feed_title == "Google Research Blog"
    assert page.next_url == (
        "http://www.blogger.com/feeds/21224994/posts/default"
        "?start-index=26&max-results=25&redirect=false"
    )
    assert page.total_results == 515
    assert page.complete is False
    assert page.warnings == ()
    assert len(page.entries) == 25
    assert {e.id_source for e in page.entries} == {"id"}
    assert len({e.entry_id for e in page.entries}) == 25


def test_seed_first_entry_by_hand() -> None:
    first = seed_page().entries[0]
    assert first.entry_id == FIRST_ID
    assert first.title == "Teaching Robots to Understand Semantic Concepts"
    # <updated>2017-07-21T12:45:12.144-07:00</updated>: -07:00 converted, milliseconds kept.
    assert first.updated == datetime(2017, 7, 21, 19, 45, 12, 144_000, tzinfo=UTC)
    assert _ts(first.updated) == "2017-07-21T19:45:12.144Z"
    assert _ts(first.published) == "2017-07-21T19:00:00.000Z"
    assert first.link == (
        "http://feedproxy.google.com/~r/blogspot/gJZg/~3/sQBgsnZw37g/"
        "teaching-robots-to-understand-semantic.html"
    )
    assert first.authors == (
        Person(
            name="Research Blog",
            email="noreply@blogger.com",
            uri="https://plus.google.com/101673966767287570260",
        ),
    )
    assert first.categories == ("Deep Learning", "Google Brain", "Research", "Robotics")
    # Blogger entries carry <content> only: the summary is not invented from it.
    assert first.summary is None
    assert first.content is not None
    assert first.content.startswith('<span class="byline-author">Posted by Sergey Levine')
    assert first.base_url == SEED_URL
    replies = [link for link in first.links if link.rel == "replies"]
    assert [link.title for link in replies] == ["Post Comments", "0 Comments"]


def test_seed_agrees_with_an_independent_xml_reading() -> None:
    """Every entry's id, title, timestamps, categories and content, read again with ElementTree."""
    ns = {"a": "http://www.w3.org/2005/Atom"}
    root = ET.fromstring(SEED.read_bytes())
    raw_entries = root.findall("a:entry", ns)
    page = seed_page()
    assert len(raw_entries) == len(page.entries) == 25
    for raw, parsed in zip(raw_entries, page.entries, strict=True):
        assert parsed.entry_id == raw.findtext("a:id", namespaces=ns)
        assert parsed.title == raw.findtext("a:title", namespaces=ns)
        published = raw.findtext("a:published", namespaces=ns)
        updated = raw.findtext("a:updated", namespaces=ns)
        assert published is not None and updated is not None
        assert parsed.published == datetime.fromisoformat(published)
        assert parsed.updated == datetime.fromisoformat(updated)
        terms = [c.get("term") for c in raw.findall("a:category", ns)]
        assert list(parsed.categories) == terms
        # Content exactly as published: no sanitizing, no URI rewriting.
        assert parsed.content == (raw.findtext("a:content", namespaces=ns) or "").strip()


def test_expected_seed_file_is_what_the_brief_describes() -> None:
    """Guards the golden file itself against a careless regeneration."""
    expected = json.loads((DATA / "google-research-blog-page1.expected.json").read_text("utf-8"))
    assert expected["total_results"] == 515
    assert len(expected["entries"]) == 25
    assert expected["entries"][0]["id"] == FIRST_ID
    assert expected["entries"][0]["updated"] == "2017-07-21T19:45:12.144Z"


# --- fixtures by hand ---------------------------------------------------------------------------


def test_rss2_items() -> None:
    page = parse_fixture(FIXTURES[1])
    assert page.next_url == "https://rss.example.com/feed.xml?paged=2"
    first, second, third, fourth, fifth = page.entries
    assert first.published == datetime(2003, 6, 10, 4, tzinfo=UTC)
    assert first.updated is None  # RSS has pubDate only
    assert first.summary == "Short <b>teaser</b>."
    assert first.content is not None and "<script>alert(1)</script>" in first.content
    assert (
        Link(
            href="https://cdn.example.com/ep1.mp3",
            rel="enclosure",
            type="audio/mpeg",
            length="12345678",
        )
        in first.links
    )
    assert first.authors == (Person(name="Ann Example", email="ann@example.com"),)
    assert (second.entry_id, second.id_source) == ("urn:example:episode:2", "id")
    assert second.published == datetime(2003, 6, 11, 14, 30, tzinfo=UTC)  # 09:30 EST
    assert (third.entry_id, third.id_source) == ("https://rss.example.com/posts/3", "link")
    assert fourth.id_source == "hash"
    assert fourth.published == datetime(2003, 6, 14, 6, 59, 59, tzinfo=UTC)  # 23:59:59 PDT
    # A permalink guid doubles as the link when the item has no <link>.
    assert fifth.link == "https://rss.example.com/posts/5"


def test_rdf_items_take_dc_date_as_updated() -> None:
    first, second = parse_fixture(FIXTURES[2]).entries
    assert first.entry_id == "https://rdf.example.org/stories/1"
    assert first.updated == datetime(2004, 2, 29, 22, 30, 0, 500_000, tzinfo=UTC)
    assert first.published is None
    assert first.summary == "Summary of the first story."
    assert first.content == "<p>Body of the <em>first</em> story.</p>"
    assert second.categories == ("politics", "economy")


def test_atom_complete_fixture() -> None:
    page = parse_fixture(FIXTURES[3])
    assert page.complete is True
    first, second, third = page.entries
    assert first.updated == datetime(2024, 4, 30, 7, 15, 42, 123_456, tzinfo=UTC)
    assert first.link == "https://atom.example.net/blog/2024/04/hello.html"  # the HTML alternate
    assert first.summary == "A short summary."
    assert first.content == '<p>See <a href="../about">about</a>.</p>'  # relative URI untouched
    assert second.updated is None
    assert second.base_url == "https://media.example.net/podcast/"
    assert (
        Link(
            href="https://media.example.net/podcast/pod.ogg",
            rel="enclosure",
            type="audio/ogg",
            length="987654",
        )
        in second.links
    )
    assert (third.entry_id, third.id_source) == (
        "https://atom.example.net/blog/2024/04/no-id.html",
        "link",
    )


def test_archived_feed_is_neither_complete_nor_paged() -> None:
    page = parse_fixture(FIXTURES[4])
    assert page.complete is False
    assert page.archive is True
    assert page.next_url is None  # prev-archive is not rel="next"
    assert page.prev_archive_url == "https://archive.example.com/feeds/2022.atom"
    assert [_ts(e.updated) for e in page.entries] == [
        "2023-12-31T23:59:59.999Z",
        "2023-01-01T00:00:00.001Z",
    ]


# --- timestamps and identity --------------------------------------------------------------------


def test_offset_is_converted_to_utc() -> None:
    entry = only_entry(
        parse_atom(
            atom("<entry><id>a</id><updated>2017-07-21T12:45:12.144-07:00</updated></entry>")
        )
    )
    assert entry.updated == datetime(2017, 7, 21, 19, 45, 12, 144_000, tzinfo=UTC)


def test_one_millisecond_apart_is_a_different_updated() -> None:
    def updated(stamp: str) -> ParsedEntry:
        return only_entry(parse_atom(atom(f"<entry><id>a</id><updated>{stamp}</updated></entry>")))

    before = updated("2017-07-21T12:45:12.144-07:00")
    after = updated("2017-07-21T12:45:12.145-07:00")
    assert before.updated != after.updated
    assert _ts(after.updated) == "2017-07-21T19:45:12.145Z"
    # `updated` is compared on its own, never through the hash.
    assert before.content_hash == after.content_hash


def test_entry_with_only_published_has_no_updated() -> None:
    entry = only_entry(
        parse_atom(atom("<entry><id>a</id><published>2020-01-02T03:04:05Z</published></entry>"))
    )
    assert entry.published == datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert entry.updated is None


def test_unparseable_timestamps_are_none() -> None:
    entry = only_entry(
        parse_atom(atom("<entry><id>a</id><updated>soon</updated><published/></entry>"))
    )
    assert entry.updated is None
    assert entry.published is None


def test_id_is_taken_exactly() -> None:
    entry = only_entry(parse_atom(atom("<entry><id>Tag:Example.com,2020:Post-1</id></entry>")))
    assert (entry.entry_id, entry.id_source) == ("Tag:Example.com,2020:Post-1", "id")


def test_id_falls_back_to_the_alternate_link() -> None:
    body = atom(
        '<entry><link rel="self" href="https://example.com/self"/>'
        '<link rel="alternate" type="text/html" href="https://example.com/post"/></entry>'
    )
    entry = only_entry(parse_atom(body))
    assert (entry.entry_id, entry.id_source) == ("https://example.com/post", "link")


def test_id_falls_back_to_a_hash_of_title_and_published() -> None:
    def entry(title: str, published: str, content: str) -> ParsedEntry:
        body = atom(
            f"<entry><title>{title}</title><published>{published}</published>"
            f"<content>{content}</content></entry>"
        )
        return only_entry(parse_atom(body))

    one = entry("Hello", "2020-01-02T03:04:05Z", "first")
    expected = hashlib.sha256(json.dumps(["Hello", "2020-01-02T03:04:05Z"]).encode()).hexdigest()
    assert (one.entry_id, one.id_source) == (expected, "hash")
    # The raw published string is the basis, and content is not: an edit keeps the identity.
    assert entry("Hello", "2020-01-02T03:04:05Z", "edited").entry_id == one.entry_id
    assert entry("Hello", "2020-01-02T03:04:05+00:00", "first").entry_id != one.entry_id
    assert entry("Hello!", "2020-01-02T03:04:05Z", "first").entry_id != one.entry_id


def test_atom_id_is_not_mistaken_for_a_link() -> None:
    # feedparser copies an Atom id into entry["link"]; an entry without links has no link.
    entry = only_entry(parse_atom(atom("<entry><id>https://example.com/id-only</id></entry>")))
    assert entry.link is None


def test_summary_is_kept_when_it_comes_after_content() -> None:
    body = atom(
        '<entry><id>a</id><content type="html">&lt;p&gt;body&lt;/p&gt;</content>'
        "<summary>short</summary></entry>"
    )
    entry = only_entry(parse_atom(body))
    assert (entry.summary, entry.content) == ("short", "<p>body</p>")


def test_base_url_resolves_a_relative_xml_base_against_the_page() -> None:
    body = atom('<entry xml:base="/posts/"><id>a</id><content>x</content></entry>')
    entry = only_entry(parse_atom(body))
    assert entry.base_url == "https://example.com/posts/"


# --- the content hash ---------------------------------------------------------------------------


def edited_seed(old: str, new: str, count: int = 1) -> bytes:
    raw = SEED.read_text(encoding="utf-8")
    assert raw.count(old) >= count, old
    return raw.replace(old, new, count).encode("utf-8")


def first_entry_block(raw: str) -> tuple[int, int]:
    start = raw.index("<entry>")
    return start, raw.index("</entry>", start)


def test_comment_counts_do_not_change_the_hash() -> None:
    raw = SEED.read_text(encoding="utf-8")
    start, end = first_entry_block(raw)
    block = raw[start:end]
    assert "<thr:total>0</thr:total>" in block and 'title="0 Comments"' in block
    edited = block.replace("<thr:total>0</thr:total>", "<thr:total>3</thr:total>").replace(
        'title="0 Comments"', 'title="3 Comments"'
    )
    page = parse_page(
        (raw[:start] + edited + raw[end:]).encode(), url=SEED_URL, headers=ATOM_HEADERS
    )
    original = seed_page()
    first = page.entries[0]
    # The edit really reached the parsed entry...
    assert [link.title for link in first.links if link.rel == "replies"][-1] == "3 Comments"
    # ...and no hash moved.
    assert [e.content_hash for e in page.entries] == [e.content_hash for e in original.entries]
    assert first.updated == original.entries[0].updated


def test_feedburner_origlink_does_not_change_the_hash() -> None:
    body = edited_seed(
        "<feedburner:origLink>http://research.googleblog.com/2017/07/teaching-robots",
        "<feedburner:origLink>http://elsewhere.example/2017/07/teaching-robots",
    )
    page = parse_page(body, url=SEED_URL, headers=ATOM_HEADERS)
    assert page.entries[0].content_hash == seed_page().entries[0].content_hash


def test_title_edit_changes_only_that_entry_hash() -> None:
    body = edited_seed(
        '<title type="text">Teaching Robots to Understand Semantic Concepts</title>',
        '<title type="text">Teaching Robots to Understand Semantic Concepts (updated)</title>',
    )
    edited = parse_page(body, url=SEED_URL, headers=ATOM_HEADERS).entries
    original = seed_page().entries
    assert edited[0].content_hash != original[0].content_hash
    assert [e.content_hash for e in edited[1:]] == [e.content_hash for e in original[1:]]


def test_content_edit_changes_the_hash() -> None:
    body = edited_seed("Machine learning can allow robots", "Machine learning lets robots")
    edited = parse_page(body, url=SEED_URL, headers=ATOM_HEADERS).entries[0]
    assert edited.content_hash != seed_page().entries[0].content_hash


def test_ignore_fields_removes_parts_from_the_hash() -> None:
    body = edited_seed(
        '<title type="text">Teaching Robots to Understand Semantic Concepts</title>',
        '<title type="text">A new title</title>',
    )
    ignore = frozenset({"title"})
    edited = parse_page(body, url=SEED_URL, headers=ATOM_HEADERS, ignore_fields=ignore)
    original = parse_page(
        SEED.read_bytes(), url=SEED_URL, headers=ATOM_HEADERS, ignore_fields=ignore
    )
    assert edited.entries[0].content_hash == original.entries[0].content_hash
    # Ignoring a field is not ignoring everything: a content edit still shows.
    body = edited_seed("Machine learning can allow robots", "Machine learning lets robots")
    content_edit = parse_page(body, url=SEED_URL, headers=ATOM_HEADERS, ignore_fields=ignore)
    assert content_edit.entries[0].content_hash != original.entries[0].content_hash


def test_unknown_ignore_field_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="updated"):
        parse_page(
            SEED.read_bytes(), url=SEED_URL, headers={}, ignore_fields=frozenset({"updated"})
        )


ALTERNATE = Link(href="https://e.com/a", rel="alternate", type="text/html")
REPLIES = Link(href="https://e.com/r", rel="replies", type="text/html", title="0 Comments")
ENCLOSURE = Link(href="https://e.com/f.mp3", rel="enclosure", type="audio/mpeg", length="10")
BASE: dict[str, Any] = {
    "title": "T",
    "content": "<p>C</p>",
    "summary": "S",
    "links": (ALTERNATE, REPLIES, ENCLOSURE),
    "authors": (Person(name="A", email="a@e.com"),),
    "categories": ("x", "y"),
    "published": datetime(2020, 1, 1, tzinfo=UTC),
}


def hash_of(**changes: Any) -> str:
    return content_hash(**{**BASE, **changes})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("title", "T2"),
        ("content", "<p>C2</p>"),
        ("summary", None),
        ("links", (ALTERNATE,)),
        ("links", (ALTERNATE, REPLIES, replace(ENCLOSURE, length="11"))),
        ("links", (replace(ALTERNATE, type="application/xhtml+xml"), REPLIES, ENCLOSURE)),
        ("links", (ALTERNATE, replace(REPLIES, href="https://e.com/r2"), ENCLOSURE)),
        ("links", (ALTERNATE, replace(REPLIES, rel="related"), ENCLOSURE)),
        ("authors", (Person(name="B", email="a@e.com"),)),
        ("authors", (Person(name="A", email="a@e.com", uri="https://e.com/a"),)),
        ("categories", ("x",)),
        ("published", datetime(2020, 1, 1, 0, 0, 0, 1000, tzinfo=UTC)),
        ("published", None),
    ],
)
def test_hash_covers_each_part(field: str, value: Any) -> None:
    assert hash_of(**{field: value}) != hash_of()
    # ...unless that part is ignored.
    ignore = frozenset({field})
    assert hash_of(**{field: value}, ignore_fields=ignore) == hash_of(ignore_fields=ignore)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("links", (ALTERNATE, replace(REPLIES, title="3 Comments"), ENCLOSURE)),
        ("links", (replace(ALTERNATE, title="A title"), REPLIES, ENCLOSURE)),
        ("links", (ENCLOSURE, REPLIES, ALTERNATE)),
        ("categories", ("y", "x")),
        ("published", datetime.fromisoformat("2019-12-31T17:00:00-07:00")),
    ],
)
def test_hash_ignores_what_carries_no_meaning(field: str, value: Any) -> None:
    assert hash_of(**{field: value}) == hash_of()


def test_content_and_summary_are_not_interchangeable() -> None:
    assert hash_of(content="X", summary=None) != hash_of(content=None, summary="X")


def reference_content_hash(
    *,
    title: str | None,
    content: str | None,
    summary: str | None,
    links: tuple[Link, ...],
    authors: tuple[Person, ...],
    categories: tuple[str, ...],
    published: datetime | None,
    ignore_fields: frozenset[str],
) -> str:
    """The content hash as first defined: sha256 of one json.dumps of the projection.

    Stored hashes were made this way; content_hash builds the same bytes faster and must stay equal.
    """

    def projected(link: Link) -> list[str | None]:
        return (
            [link.href, link.type, link.length]
            if link.rel == "enclosure"
            else [link.href, link.type]
        )

    projection: dict[str, Any] = {
        "title": title,
        "content": content,
        "summary": summary,
        "links": {
            rel: sorted(
                (projected(link) for link in links if link.rel == rel),
                key=lambda item: [part or "" for part in item],
            )
            for rel in {link.rel for link in links}
        },
        "authors": [[a.name, a.email, a.uri] for a in authors],
        "categories": sorted(categories),
        "published": format_timestamp(published) if published is not None else None,
    }
    for name in ignore_fields:
        del projection[name]
    canonical = json.dumps(projection, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


# Any code point, lone surrogates included, with the characters JSON escapes made likely.
_hash_text = st.text(
    alphabet=st.one_of(
        st.sampled_from('"\\\n\r\t\b\f\x00\x1f\x7f/<>&é€😀\ud800\udfff'),
        st.characters(codec=None),
    )
)
_optional_text = st.none() | _hash_text
_hash_links = st.lists(
    st.builds(
        Link,
        href=_hash_text,
        rel=st.sampled_from(["alternate", "enclosure", "replies", "self"]) | _hash_text,
        type=_optional_text,
        title=_optional_text,
        length=_optional_text,
    ),
    max_size=5,
).map(tuple)
_hash_people = st.lists(
    st.builds(Person, name=_optional_text, email=_optional_text, uri=_optional_text), max_size=3
).map(tuple)


@settings(max_examples=500, deadline=None)
@given(
    title=_optional_text,
    content=_optional_text,
    summary=_optional_text,
    links=_hash_links,
    authors=_hash_people,
    categories=st.lists(_hash_text, max_size=4).map(tuple),
    published=st.none() | st.datetimes(timezones=st.just(UTC)),
    ignore_fields=st.frozensets(st.sampled_from(sorted(HASH_FIELDS))),
)
def test_content_hash_equals_the_reference_json_form(**parts: Any) -> None:
    assert content_hash(**parts) == reference_content_hash(**parts)


# What well-formed XML 1.0 text can hold: no C0 control but tab, line feed, carriage return.
_xml_text = st.text(
    alphabet=st.one_of(
        st.sampled_from('"\\\n\r\t/<>&é€😀\x7f\x85'),
        st.characters(
            codec="utf-8",  # no surrogates
            exclude_characters=[chr(c) for c in range(32) if c not in (9, 10, 13)]
            + ["\ufffe", "\uffff"],
        ),
    )
)


@settings(max_examples=300, deadline=None)
@given(
    title=st.none() | _xml_text,
    content=st.none() | _xml_text,
    summary=st.none() | _xml_text,
    links=_hash_links,
    authors=_hash_people,
    categories=st.lists(_hash_text, max_size=4).map(tuple),
    published=st.none() | st.datetimes(timezones=st.just(UTC)),
    ignore_fields=st.frozensets(st.sampled_from(sorted(HASH_FIELDS))),
)
def test_content_hash_of_xml_text_equals_the_reference_json_form(**parts: Any) -> None:
    # The fast path's shortcut (only tab and carriage return to look for) gives the same bytes.
    ignore_fields = parts.pop("ignore_fields")
    fields = (
        parts["title"],
        parts["content"],
        parts["summary"],
        parts["links"],
        parts["authors"],
        parts["categories"],
        parts["published"],
    )
    expected = reference_content_hash(**parts, ignore_fields=ignore_fields)
    assert syncd.parse._content_hash(*fields, ignore_fields, xml=True) == expected


@pytest.mark.parametrize("control", [b"&#1;", b"&#x1F;", b"&#0;", b"\x01", b"\x1b"])
def test_the_fast_path_never_reads_a_c0_control_other_than_tab_lf_cr(control: bytes) -> None:
    # The premise of the shortcut above: libxml2 refuses such a document (XML 1.0 has no such
    # character, literal or referenced), so the fast path declines it and feedparser reads it.
    body = (
        b'<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title>'
        b"<entry><id>x</id><title>a" + control + b"b</title><content>c" + control + b"d</content>"
        b"</entry></feed>"
    )
    assert isinstance(
        syncd.parse.parse_page_fast(body, url=SEED_URL, headers=ATOM_HEADERS), syncd.parse.Declined
    )


def test_content_hash_of_every_seed_entry_equals_the_reference_json_form() -> None:
    for entry in seed_page().entries:
        parts: dict[str, Any] = {name: getattr(entry, name) for name in sorted(HASH_FIELDS)}
        assert entry.content_hash == reference_content_hash(**parts, ignore_fields=frozenset())


def test_hash_fields_are_the_documented_set() -> None:
    documented = {"title", "content", "summary", "links", "authors", "categories", "published"}
    assert documented == HASH_FIELDS


# --- refusals: DESIGN §7 ------------------------------------------------------------------------


def linear_entity_bomb(refs: int = 5000, size: int = 5000) -> str:
    """One entity referenced many times: 20 KB that feedparser's loose parser inflates to 25 MB."""
    return (
        '<?xml version="1.0"?>\n'
        f'<!DOCTYPE feed [\n<!ENTITY e "{"A" * size}">\n]>\n'
        '<feed xmlns="http://www.w3.org/2005/Atom">'
        f"<title>{'&e;' * refs}</title><entry><id>x</id></entry></feed>"
    )


def nested_entity_bomb() -> str:
    """The classic "billion laughs": ten levels of ten references each."""
    levels = "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10))
    return (
        '<?xml version="1.0"?>\n'
        f'<!DOCTYPE feed [<!ENTITY lol0 "lol">{levels}]>\n'
        '<feed xmlns="http://www.w3.org/2005/Atom"><title>&lol9;</title></feed>'
    )


def peak_memory_of_refused(body: bytes, *, headers: dict[str, str] | None = None) -> int:
    tracemalloc.start()
    try:
        with pytest.raises(ParseError) as caught:
            parse_page(body, url="https://evil.example/feed", headers=headers or {})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert caught.value.url == "https://evil.example/feed"
    assert "declares entities" in str(caught.value)
    return peak


@pytest.mark.parametrize("bomb", [linear_entity_bomb, nested_entity_bomb])
def test_entity_bombs_are_refused_without_expansion(bomb: Any) -> None:
    # Undefended, the linear bomb costs feedparser ~84 MB (a 25-million-character title).
    assert peak_memory_of_refused(bomb().encode()) < 16_000_000


def test_entity_bomb_hidden_in_utf16_is_refused() -> None:
    body = linear_entity_bomb().replace(
        '<?xml version="1.0"?>', '<?xml version="1.0" encoding="utf-16"?>'
    )
    encoded = body.encode("utf-16")
    assert b"<!DOCTYPE" not in encoded  # a byte-level search would miss it
    assert peak_memory_of_refused(encoded) < 16_000_000


@pytest.mark.parametrize(
    ("before", "after"),
    [("<!--\n<!DOCTYPE", "]>\n-->\n"), ("junk <!DOCTYPE", "]>\n")],
    ids=["in-a-comment", "after-junk"],
)
def test_doctype_outside_a_proper_prolog_is_refused(before: str, after: str) -> None:
    # expat ignores it or stops before it, but feedparser's regex would still find the entity
    # and pass it to the loose parser.
    body = linear_entity_bomb().replace("<!DOCTYPE", before).replace("]>\n", after)
    with pytest.raises(ParseError, match="entity declaration outside a well-formed prolog"):
        parse_page(body.encode(), url="u", headers={})


def test_commented_out_doctype_without_entities_is_read() -> None:
    # Found by feedparser's own corpus: a leading comment that merely mentions a DOCTYPE
    # declares nothing, and feedparser reads the feed.
    body = (
        b'<?xml version="1.0"?>\n'
        b'<!-- <!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN"\n'
        b'  "http://my.netscape.com/publish/formats/rss-0.91.dtd"> -->\n'
        b'<rss version="2.0"><channel><title>Old</title>'
        b"<item><title>One</title><link>https://old.example/1</link></item></channel></rss>"
    )
    page = parse_page(body, url="https://old.example/rss", headers={})
    assert page.feed_title == "Old"
    assert [e.entry_id for e in page.entries] == ["https://old.example/1"]


def test_unterminated_doctype_is_refused() -> None:
    body = b'<?xml version="1.0"?><!DOCTYPE feed [<!ENTITY e "aaaa">'
    with pytest.raises(ParseError, match="unterminated"):
        parse_page(body, url="u", headers={})


def test_harmless_external_doctype_is_removed_and_the_feed_parses() -> None:
    body = (
        b'<?xml version="1.0"?>\n'
        b'<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN"\n'
        b'  "http://my.netscape.com/publish/formats/rss-0.91.dtd">\n'
        b'<rss version="0.91"><channel><title>Old</title><link>https://old.example/</link>'
        b"<item><title>One</title><link>https://old.example/1</link></item></channel></rss>"
    )
    page = parse_page(body, url="https://old.example/rss", headers={})
    assert page.feed_title == "Old"
    assert [e.entry_id for e in page.entries] == ["https://old.example/1"]


def test_strip_doctype_handles_brackets_and_quotes_inside_the_subset() -> None:
    doc = (
        b'<?xml version="1.0"?><?xml-stylesheet href="s.xsl"?><!-- c -->'
        b"<!DOCTYPE feed [ <!ENTITY a \"]>'\"> <!-- ]> --> <?pi ]>?> <!ENTITY b '\">]'> ]  >"
        b"<feed/>"
    )
    assert (
        strip_doctype(doc)
        == b'<?xml version="1.0"?><?xml-stylesheet href="s.xsl"?><!-- c --><feed/>'
    )


def test_strip_doctype_leaves_documents_without_one_untouched() -> None:
    raw = SEED.read_bytes()
    assert strip_doctype(raw) == raw


def test_html_page_is_not_a_feed() -> None:
    html = b"<!DOCTYPE html><html><head><title>Oops</title></head><body><p>Error<br></body></html>"
    with pytest.raises(ParseError, match=r"not a feed.*HTML") as caught:
        parse_page(html, url="https://example.com/feed", headers={"content-type": "text/html"})
    assert caught.value.url == "https://example.com/feed"


def test_well_formed_xhtml_page_is_not_a_feed_either() -> None:
    xhtml = b'<html xmlns="http://www.w3.org/1999/xhtml"><body><p>Moved</p></body></html>'
    with pytest.raises(ParseError, match="not a feed"):
        parse_page(xhtml, url="u", headers={"content-type": "application/xml"})


@pytest.mark.parametrize("body", [b"", b"  \r\n\t "], ids=["empty", "whitespace"])
def test_empty_body_is_refused(body: bytes) -> None:
    with pytest.raises(ParseError, match="empty"):
        parse_page(body, url="u", headers=ATOM_HEADERS)


@pytest.mark.parametrize("fraction", [0.02, 0.5, 0.999])
def test_truncated_body_is_refused(fraction: float) -> None:
    raw = SEED.read_bytes()
    with pytest.raises(ParseError) as caught:
        parse_page(raw[: int(len(raw) * fraction)], url=SEED_URL, headers=ATOM_HEADERS)
    assert caught.value.url == SEED_URL


@settings(max_examples=25, deadline=None)
@given(st.floats(min_value=0.0, max_value=1.0))
def test_any_truncation_is_refused(fraction: float) -> None:
    raw = SEED.read_bytes()
    end = raw.rindex(b"</feed>") + len(b"</feed>") - 1  # at least the final ">" is missing
    with pytest.raises(ParseError):
        parse_page(raw[: int(end * fraction)], url=SEED_URL, headers=ATOM_HEADERS)


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=2000),
        st.text(alphabet="<>!?/&;=\"' abcfeditmnry[]-:", max_size=300).map(str.encode),
    )
)
def test_arbitrary_bytes_give_a_page_or_a_parse_error(body: bytes) -> None:
    try:
        page = parse_page(body, url="u", headers={})
    except ParseError as exc:
        assert exc.url == "u"
    else:
        assert isinstance(page, ParsedPage)


def test_feedparser_crash_on_a_garbled_encoding_name_is_a_parse_error() -> None:
    # feedparser 6.0.14 decodes the declared encoding name as UTF-8 and lets the error escape.
    body = b'<?xml version="1.0" encoding="utf\xc2-8"?><feed xmlns="http://www.w3.org/2005/Atom"/>'
    with pytest.raises(ParseError, match="UnicodeDecodeError"):
        parse_page(body, url="u", headers={})


def test_truncation_message_names_the_parser_complaint() -> None:
    raw = SEED.read_bytes()
    with pytest.raises(
        ParseError, match=r"truncated or unterminated document \(.*no element found"
    ):
        parse_page(raw[: raw.rindex(b"</feed>")], url=SEED_URL, headers=ATOM_HEADERS)


def test_too_many_entries_is_refused() -> None:
    assert (
        len(parse_page(SEED.read_bytes(), url=SEED_URL, headers={}, max_entries=25).entries) == 25
    )
    with pytest.raises(ParseError, match="too many entries"):
        parse_page(SEED.read_bytes(), url=SEED_URL, headers={}, max_entries=24)


def test_a_body_naming_a_local_file_is_not_read_from_disk() -> None:
    # feedparser opens bytes that name an existing file; the seed would then parse as a feed.
    with pytest.raises(ParseError, match="not a feed"):
        parse_page(str(SEED.resolve()).encode(), url="u", headers={})


# --- survivable complaints and headers ----------------------------------------------------------


def test_feed_served_as_text_html_parses_with_a_warning() -> None:
    page = parse_page(SEED.read_bytes(), url=SEED_URL, headers={"Content-Type": "text/html"})
    assert len(page.entries) == 25
    assert page.entries[0].content_hash == seed_page().entries[0].content_hash
    assert any(
        w.startswith(("NonXMLContentType", "CharacterEncodingOverride")) for w in page.warnings
    )


def test_wrong_charset_is_survived_with_a_warning() -> None:
    # The server claims ASCII; the bytes are UTF-8. feedparser falls back and says so.
    body = atom("<entry><id>a</id><title>Café</title></entry>")
    headers = {"content-type": "application/atom+xml; charset=us-ascii"}
    page = parse_page(body, url="u", headers=headers)
    assert only_entry(page).title == "Café"
    assert any(w.startswith("CharacterEncodingOverride") for w in page.warnings)


def test_latin1_document_is_decoded() -> None:
    body = (
        '<?xml version="1.0" encoding="iso-8859-1"?>'
        '<feed xmlns="http://www.w3.org/2005/Atom"><entry><id>a</id><title>Café</title></entry></feed>'
    ).encode("iso-8859-1")
    page = parse_page(body, url="u", headers={"content-type": "application/atom+xml"})
    assert only_entry(page).title == "Café"
    assert page.warnings == ()


def test_header_names_are_case_insensitive() -> None:
    lower = parse_page(SEED.read_bytes(), url=SEED_URL, headers={"content-type": "text/html"})
    upper = parse_page(SEED.read_bytes(), url=SEED_URL, headers={"Content-Type": "text/html"})
    assert lower == upper
    assert lower.warnings


# --- feed-level extensions ----------------------------------------------------------------------


def test_next_link_is_resolved_against_the_final_url() -> None:
    page = parse_atom(atom("", feed_extra='<link rel="next" href="?page=2"/>'))
    assert page.next_url == "https://example.com/feed?page=2"
    assert parse_atom(atom("")).next_url is None


@pytest.mark.parametrize(
    ("namespaces", "element"),
    [
        ('xmlns:fh="http://purl.org/syndication/history/1.0"', "<fh:complete/>"),
        (
            'xmlns:History="http://purl.org/syndication/history/1.0"',
            "<History:complete></History:complete>",
        ),
        ("", '<complete xmlns="http://purl.org/syndication/history/1.0"/>'),
    ],
)
def test_fh_complete_whatever_the_prefix(namespaces: str, element: str) -> None:
    assert parse_atom(atom("", feed_extra=element, namespaces=namespaces)).complete is True


def test_a_complete_element_in_another_namespace_does_not_count() -> None:
    body = atom("", feed_extra="<x:complete/>", namespaces='xmlns:x="urn:other"')
    assert parse_atom(body).complete is False


@pytest.mark.parametrize(
    ("namespaces", "element"),
    [
        ('xmlns:openSearch="http://a9.com/-/spec/opensearchrss/1.0/"', "openSearch:totalResults"),
        ('xmlns:os="http://a9.com/-/spec/opensearch/1.1/"', "os:totalResults"),
    ],
)
def test_total_results_whatever_the_prefix(namespaces: str, element: str) -> None:
    body = atom("", feed_extra=f"<{element}> 42 </{element}>", namespaces=namespaces)
    assert parse_atom(body).total_results == 42


def test_total_results_that_is_not_a_number_is_ignored() -> None:
    ns = 'xmlns:os="http://a9.com/-/spec/opensearch/1.1/"'
    body = atom("", feed_extra="<os:totalResults>many</os:totalResults>", namespaces=ns)
    assert parse_atom(body).total_results is None


# --- leniency and tombstones -------------------------------------------------------------------


def test_undefined_entity_is_read_leniently_and_flagged() -> None:
    body = atom("<entry><id>a</id><title>Caf&eacute; &nbsp;menu</title></entry>")
    page = parse_atom(body)
    assert page.malformed is True
    assert [e.entry_id for e in page.entries] == ["a"]
    assert any("read leniently" in w for w in page.warnings)


def test_well_formed_page_is_not_malformed() -> None:
    assert parse_fixture(FIXTURES[0]).malformed is False


def test_rfc6721_tombstones_are_read() -> None:
    body = atom(
        '<at:deleted-entry ref="tag:x,2024:1" when="2024-05-01T10:00:00.123+02:00"/>'
        '<at:deleted-entry ref="tag:x,2024:2"/><entry><id>a</id></entry>',
        namespaces='xmlns:at="http://purl.org/atompub/tombstones/1.0"',
    )
    page = parse_atom(body)
    assert [(t.ref, _ts(t.when)) for t in page.tombstones] == [
        ("tag:x,2024:1", "2024-05-01T08:00:00.123Z"),
        ("tag:x,2024:2", None),
    ]
    assert [e.entry_id for e in page.entries] == ["a"]


def test_a_deleted_entry_element_in_another_namespace_is_ignored() -> None:
    body = atom(
        '<x:deleted-entry ref="tag:x,2024:1"/>', namespaces='xmlns:x="http://example.com/other"'
    )
    assert parse_atom(body).tombstones == ()


def test_regenerate_is_in_sync_with_the_fixture_list() -> None:
    expected_files = {f.expected for f in FIXTURES}
    on_disk = {p.name for p in DATA.glob("*.expected.json")}
    assert expected_files == on_disk
    assert all(re.fullmatch(r"[\w.-]+\.xml", f.xml) for f in FIXTURES)


# --- read-ahead guess ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'<feed><link href="/x?a=1&amp;b=2" rel="next"/><entry/></feed>', "http://h/x?a=1&b=2"),
        (b"<rss><channel><atom:link rel='next' href='p2'/><item/></channel></rss>", "http://h/p2"),
        (b'<feed><entry><link rel="next" href="/entry-level"/></entry></feed>', None),
        (b'<feed><link rel="nextpage" href="/no"/></feed>', None),
    ],
    ids=["atom-escaped", "rss-atom-link", "entry-link-ignored", "other-rel"],
)
def test_guess_next_url(body: bytes, expected: str | None) -> None:
    assert guess_next_url(body, "http://h/feed") == expected


def test_guess_agrees_with_the_parser_on_the_seed() -> None:
    raw = SEED.read_bytes()
    assert guess_next_url(raw, SEED_URL) == parse_page(raw, url=SEED_URL, headers={}).next_url


def test_guess_looks_only_at_the_head_of_hostile_bodies() -> None:
    # Thousands of unterminated <link tags made the first version scan quadratically (minutes
    # for half a megabyte, on the event loop). Now the window is 64 KB and tags are bounded.
    hostile = b"<feed>" + b"<link " * 200_000 + b'<link rel="next" href="/late"/>'
    assert guess_next_url(hostile, "http://h/feed") is None
    late = b"<feed>" + b" " * 70_000 + b'<link rel="next" href="/p2"/>'
    assert guess_next_url(late, "http://h/feed") is None  # beyond the window: no guess
