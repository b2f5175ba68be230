"""The two parse paths (lxml fast path, feedparser) give equal pages, or the fast path declines.

Differential: every fixture, the seed, and a generated corpus (tests/support/feedgen.py). The
hostile cases of test_parse.py run through both paths here. bench/parse_paths.py prints how many
documents the fast path declines, and why.
"""

from __future__ import annotations

import tracemalloc
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd import fastparse
from syncd.errors import ParseError
from syncd.model import ParsedPage
from syncd.parse import (
    Declined,
    FastPage,
    open_page_fast,
    parse_page,
    parse_page_fast,
    parse_page_feedparser,
)
from tests.support.feedgen import Document, compare_paths, documents
from tests.test_parse import (
    ATOM_HEADERS,
    FIXTURES,
    SEED,
    SEED_URL,
    linear_entity_bomb,
    nested_entity_bomb,
)

DATA = Path(__file__).parent / "data"

Parser = Callable[..., ParsedPage | Declined]


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda f: f.xml)
def test_fixtures_agree(fixture: Any) -> None:
    body = (DATA / fixture.xml).read_bytes()
    assert compare_paths(body, fixture.headers, fixture.url) in (None, *_EXPECTED_DECLINES)


# Fixtures that use what the fast path leaves to feedparser, and why.
_EXPECTED_DECLINES = (
    "xml:base (or another attribute named base)",  # atom-complete.xml
    "an author string with an e-mail address",  # rss2.xml
)


@pytest.mark.parametrize(
    ("name", "headers"),
    [
        ("google-research-blog-page1.atom.xml", ATOM_HEADERS),
        ("google-research-blog-page1.atom.xml", {}),
        ("atom-archive.xml", {"content-type": "application/atom+xml"}),
        ("rss1-rdf.xml", {"content-type": "application/rdf+xml"}),
    ],
)
def test_common_feeds_take_the_fast_path(name: str, headers: dict[str, str]) -> None:
    page = parse_page_fast((DATA / name).read_bytes(), url=SEED_URL, headers=headers)
    assert isinstance(page, ParsedPage)
    assert page == parse_page_feedparser((DATA / name).read_bytes(), url=SEED_URL, headers=headers)


WORDPRESS_RSS = b"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"
  xmlns:wfw="http://wellformedweb.org/CommentAPI/" xmlns:dc="http://purl.org/dc/elements/1.1/"
  xmlns:atom="http://www.w3.org/2005/Atom" xmlns:sy="http://purl.org/rss/1.0/modules/syndication/"
  xmlns:slash="http://purl.org/rss/1.0/modules/slash/">
<channel><title>A blog</title>
  <atom:link href="https://blog.example/feed/" rel="self" type="application/rss+xml" />
  <link>https://blog.example</link><description>Words</description>
  <lastBuildDate>Mon, 01 Jul 2024 10:00:00 +0000</lastBuildDate><language>en-US</language>
  <sy:updatePeriod>hourly</sy:updatePeriod><sy:updateFrequency>1</sy:updateFrequency>
  <generator>https://wordpress.org/?v=6.5</generator>
  <item><title>Caf\xc3\xa9 &#8211; notes</title><link>https://blog.example/2024/07/cafe/</link>
    <comments>https://blog.example/2024/07/cafe/#respond</comments>
    <dc:creator><![CDATA[Jane]]></dc:creator><pubDate>Mon, 01 Jul 2024 09:00:00 +0000</pubDate>
    <category><![CDATA[Food]]></category><category><![CDATA[Paris]]></category>
    <guid isPermaLink="false">https://blog.example/?p=42</guid>
    <description><![CDATA[<p>Short &#8230;</p>]]></description>
    <content:encoded><![CDATA[<p>Long text.</p>]]></content:encoded>
    <wfw:commentRss>https://blog.example/2024/07/cafe/feed/</wfw:commentRss>
    <slash:comments>3</slash:comments>
  </item>
</channel></rss>"""

PODCAST_RSS = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd">
<channel><title>A show</title><link>https://pod.example/</link>
  <description>About the show</description><itunes:author>Host</itunes:author>
  <itunes:summary>About the show</itunes:summary>
  <itunes:owner><itunes:name>Host</itunes:name><itunes:email>h@pod.example</itunes:email>
  </itunes:owner><itunes:image href="https://pod.example/show.jpg"/>
  <itunes:category text="Technology"><itunes:category text="Gadgets"/></itunes:category>
  <itunes:explicit>false</itunes:explicit>
  <item><title>Episode 1</title><itunes:author>Host</itunes:author>
    <itunes:summary>First &lt;b&gt;one&lt;/b&gt;</itunes:summary>
    <enclosure url="https://pod.example/1.mp3" length="1234" type="audio/mpeg"/>
    <guid>https://pod.example/1</guid><pubDate>Tue, 02 Jul 2024 06:00:00 GMT</pubDate>
    <itunes:duration>00:42:00</itunes:duration><itunes:keywords>tech, news</itunes:keywords>
    <itunes:image href="https://pod.example/1.jpg"/><itunes:explicit>no</itunes:explicit>
  </item>
</channel></rss>"""


@pytest.mark.parametrize("body", [WORDPRESS_RSS, PODCAST_RSS], ids=["wordpress", "podcast"])
def test_typical_rss_takes_the_fast_path(body: bytes) -> None:
    headers = {"content-type": "application/rss+xml; charset=UTF-8"}
    page = parse_page_fast(body, url="https://x.example/feed", headers=headers)
    assert isinstance(page, ParsedPage), page
    assert page == parse_page_feedparser(body, url="https://x.example/feed", headers=headers)
    assert page.entries[0].categories  # WordPress categories, podcast keywords


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (SEED.read_bytes(), ATOM_HEADERS),
        ((DATA / "rss1-rdf.xml").read_bytes(), {"content-type": "application/rdf+xml"}),
        (WORDPRESS_RSS, {"content-type": "application/rss+xml; charset=UTF-8"}),
        (PODCAST_RSS, {"content-type": "application/rss+xml; charset=UTF-8"}),
    ],
    ids=["seed", "rss1", "wordpress", "podcast"],
)
def test_common_entries_are_read_directly(body: bytes, headers: dict[str, str]) -> None:
    # The direct reading (no raw dictionary) covers common feeds' entries, so the differential
    # tests (compare_paths runs both readings) compare it on them and not only its fallback.
    opened = open_page_fast(body, url=SEED_URL, headers=headers)
    assert isinstance(opened, FastPage)
    assert opened.read.items
    assert all(opened.read.direct(el) is not None for el in opened.read.items)
    assert opened.page(None) == opened.page(None, direct=False)


def test_generated_documents_agree_or_are_declined() -> None:
    outcomes: Counter[str] = Counter()

    @settings(
        max_examples=1000,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(documents())
    def check(doc: Document) -> None:
        reason = compare_paths(doc.body, doc.headers, "https://example.com/feeds/posts/default")
        outcomes[reason or "(read by the fast path)"] += 1

    check()
    # A generator (or a fast path) that declined everything would compare nothing. About a quarter
    # of the documents are read by the fast path; the bound leaves room for the draw's randomness.
    assert outcomes["(read by the fast path)"] >= 100, dict(outcomes)


def test_feedparser_tables_are_mirrored_exactly() -> None:
    from feedparser.api import StrictFeedParser
    from feedparser.html import _cp1252
    from feedparser.mixin import _FeedParserMixin

    assert dict(fastparse.KNOWN_NAMESPACES) == _FeedParserMixin.namespaces
    handled = {
        name.split("_", 2)[-1] if name.startswith("_start_") else name[len("_end_") :]
        for name in dir(StrictFeedParser)
        if name.startswith(("_start_", "_end_"))
    }
    assert handled == fastparse.HANDLED_NAMES
    assert {chr(k): v for k, v in fastparse._CP1252.items()} == {
        chr(k): v for k, v in _cp1252.items()
    }


@pytest.mark.parametrize(("text", "expected"), [("²", None), ("٣", 3), (" 42 ", 42)])
def test_a_number_int_cannot_read_is_no_number_on_either_path(
    text: str, expected: int | None
) -> None:
    body = (
        '<feed xmlns="http://www.w3.org/2005/Atom" '
        'xmlns:openSearch="http://a9.com/-/spec/opensearchrss/1.0/">'
        f"<openSearch:totalResults>{text}</openSearch:totalResults></feed>"
    ).encode()
    fast = parse_page_fast(body, url="u", headers={})
    assert isinstance(fast, ParsedPage)
    assert fast.total_results == expected
    assert fast == parse_page_feedparser(body, url="u", headers={})


# --- same bytes, same result ---------------------------------------------------------------------


def test_a_feed_flipping_to_malformed_changes_no_other_entry() -> None:
    raw = SEED.read_bytes()
    well_formed = parse_page(raw, url=SEED_URL, headers=ATOM_HEADERS)
    assert isinstance(parse_page_fast(raw, url=SEED_URL, headers=ATOM_HEADERS), ParsedPage)
    # An undefined entity in the last entry's title: only feedparser's lenient reading copes.
    end = raw.rindex(b"</title>")
    broken = raw[:end] + b" &nbsp;" + raw[end:]
    assert isinstance(parse_page_fast(broken, url=SEED_URL, headers=ATOM_HEADERS), Declined)
    malformed = parse_page(broken, url=SEED_URL, headers=ATOM_HEADERS)
    assert malformed.malformed and not well_formed.malformed
    before = {e.entry_id: e for e in well_formed.entries}
    after = {e.entry_id: e for e in malformed.entries}
    assert before.keys() == after.keys()
    changed = [entry_id for entry_id in before if before[entry_id] != after[entry_id]]
    assert len(changed) == 1  # the edited entry, and nothing else looks updated
    flipped_back = parse_page(raw, url=SEED_URL, headers=ATOM_HEADERS)
    assert flipped_back == well_formed


# --- hostile input, on both paths ----------------------------------------------------------------

_HOSTILE: dict[str, tuple[bytes, dict[str, str]]] = {
    "linear-entity-bomb": (linear_entity_bomb().encode(), {}),
    "nested-entity-bomb": (nested_entity_bomb().encode(), {}),
    "bomb-in-utf16": (
        linear_entity_bomb()
        .replace('<?xml version="1.0"?>', '<?xml version="1.0" encoding="utf-16"?>')
        .encode("utf-16"),
        {},
    ),
    "entity-in-a-comment": (
        linear_entity_bomb()
        .replace("<!DOCTYPE", "<!--\n<!DOCTYPE")
        .replace("]>\n", "]>\n-->\n")
        .encode(),
        {},
    ),
    "unterminated-doctype": (b'<?xml version="1.0"?><!DOCTYPE feed [<!ENTITY e "aaaa">', {}),
    "external-dtd": (
        b'<?xml version="1.0"?><!DOCTYPE feed SYSTEM "http://127.0.0.1:9/x.dtd">'
        b'<feed xmlns="http://www.w3.org/2005/Atom"><entry><id>a</id></entry></feed>',
        {},
    ),
    "xinclude": (
        b'<feed xmlns="http://www.w3.org/2005/Atom" xmlns:xi="http://www.w3.org/2001/XInclude">'
        b'<entry><id>a</id><xi:include href="file:///etc/passwd" parse="text"/></entry></feed>',
        {},
    ),
    "truncated": (SEED.read_bytes()[: len(SEED.read_bytes()) // 2], ATOM_HEADERS),
    "html": (
        b"<!DOCTYPE html><html><body><p>Error</p></body></html>",
        {"content-type": "text/html"},
    ),
    "xhtml": (b'<html xmlns="http://www.w3.org/1999/xhtml"><body/></html>', {}),
    "empty": (b"  \n", {}),
    "local-file-name": (str(SEED.resolve()).encode(), {}),
    "deep-nesting": (
        b'<feed xmlns="http://www.w3.org/2005/Atom"><entry><id>a</id>'
        + b"<x:a xmlns:x='urn:x'>" * 300
        + b"</x:a>" * 300
        + b"</entry></feed>",
        {},
    ),
}


def _outcome(parser: Parser, body: bytes, headers: dict[str, str]) -> ParsedPage | Declined | str:
    try:
        return parser(body, url="https://evil.example/feed", headers=headers)
    except ParseError as exc:
        assert exc.url == "https://evil.example/feed"
        return f"ParseError: {exc}"


@pytest.mark.parametrize("name", sorted(_HOSTILE))
def test_hostile_input_gets_the_same_answer_on_both_paths(name: str) -> None:
    body, headers = _HOSTILE[name]
    combined = _outcome(parse_page, body, headers)
    assert combined == _outcome(parse_page_feedparser, body, headers)
    fast = _outcome(parse_page_fast, body, headers)
    assert isinstance(fast, Declined) or fast == combined
    if name not in ("external-dtd", "xinclude", "deep-nesting"):
        assert isinstance(combined, str)
    assert "root:" not in repr(combined)


def test_a_decline_names_its_own_documents_error() -> None:
    """Malformed documents read one after another, each declined for its own first error."""
    head = b'<?xml version="1.0"?><rss version="2.0"><channel><title>'
    bodies = {
        "Entity 'nope' not defined": head + b"a &nope; b</title></channel></rss>",
        "Opening and ending tag mismatch": head + b"x</title></chanel></rss>",
        "StartTag: invalid element name": head + b"x < y</title></channel></rss>",
    }
    for _ in range(2):
        for error, body in bodies.items():
            reason = fastparse.read_fast(body, {})
            assert isinstance(reason, str)
            assert reason.startswith(f"not well-formed: {error}"), (error, reason)


def test_xinclude_is_not_processed() -> None:
    body, headers = _HOSTILE["xinclude"]
    page = parse_page_fast(body, url="u", headers=headers)
    assert isinstance(page, ParsedPage)  # read: the xi:include element is inert markup
    assert page == parse_page_feedparser(body, url="u", headers=headers)
    assert "root:" not in repr(page)


@pytest.mark.parametrize("name", ["linear-entity-bomb", "nested-entity-bomb"])
def test_the_fast_path_declines_entity_bombs_without_expanding_them(name: str) -> None:
    body, headers = _HOSTILE[name]
    tracemalloc.start()
    try:
        outcome = parse_page_fast(body, url="u", headers=headers)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert outcome == Declined("DOCTYPE")
    assert peak < 1_000_000


# --- the cheap pre-checks in front of the fast path's exact ones ---------------------------------

_BASE_FEED = (
    '<feed xmlns="http://www.w3.org/2005/Atom" xmlns:x="urn:x"><title>T</title>'
    "<entry><id>a</id><x:ext {attr}/><title>database = big; base=x</title></entry></feed>"
)


@pytest.mark.parametrize(
    "attr",
    ['xml:base="https://b.example/"', 'x:BaSe \n\t= "y"', "BASE='z'", 'base\r\n="w"'],
)
def test_every_spelling_of_a_base_attribute_is_declined(attr: str) -> None:
    body = _BASE_FEED.format(attr=attr).encode()
    assert parse_page_fast(body, url="u", headers={}) == Declined(
        "xml:base (or another attribute named base)"
    )


def test_base_in_text_alone_does_not_decline() -> None:
    body = _BASE_FEED.format(attr='x:basement="1"').encode()
    page = parse_page_fast(body, url="u", headers={})
    assert isinstance(page, ParsedPage)
    assert page == parse_page_feedparser(body, url="u", headers={})


@pytest.mark.parametrize("text", ["&#x85;", "&#133;", "\u0085", "&amp;#133;"])
def test_c1_controls_are_mapped_like_feedparser_maps_them(text: str) -> None:
    body = (
        '<feed xmlns="http://www.w3.org/2005/Atom"><entry><id>a</id>'
        f"<title>caf\u00e9 {text}</title></entry></feed>"
    ).encode()
    page = parse_page_fast(body, url="u", headers={})
    assert isinstance(page, ParsedPage)
    assert page == parse_page_feedparser(body, url="u", headers={})


_SPELLINGS = {
    "c1": fastparse._C1_UTF8,
    "charref": fastparse._CHARREF,
}


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from(sorted(_SPELLINGS)),
    pieces=st.lists(
        st.sampled_from([b"base", b"bas", b"e", b" ", b"\n", b"=", b"&", b"#", b"x", b"0", b"7"])
        | st.sampled_from([b"\xc2", b"\x85", b"\xa0", b"&#", b"&amp;#9", b"a"])
        | st.binary(max_size=3),
        max_size=400,
    ),
)
def test_spelt_finds_what_a_plain_regex_search_finds(name: str, pieces: list[bytes]) -> None:
    # Lists long enough to pass the probes the needle search makes before the regex scans on.
    data = b"".join(pieces)
    needle, pattern, lead = _SPELLINGS[name]
    assert fastparse._spelt(data, needle, pattern, lead) == (pattern.search(data) is not None)


_PAST_PROBES = fastparse._SPELT_PROBES + 1  # occurrences of the needle that outlast the probes


@pytest.mark.parametrize(
    ("name", "data", "found"),
    [
        (
            "charref",
            b"#" * _PAST_PROBES + b"&#12",
            True,
        ),  # found by the regex scan after the probes
        ("charref", b"&#" * _PAST_PROBES + b"&#0;", False),
        ("c1", b"\xc2\xa0" * _PAST_PROBES + b"\xc2\x9f", True),
        ("c1", b"\xc2\xa0" * _PAST_PROBES, False),
    ],
)
def test_spelt_past_its_probes(name: str, data: bytes, found: bool) -> None:
    needle, pattern, lead = _SPELLINGS[name]
    assert fastparse._spelt(data, needle, pattern, lead) is found
