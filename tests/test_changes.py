"""The changes query's pure decisions: which feeds offer it, its URL, and usable answers."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

from syncd.changes import (
    OVERLAP,
    ChangesSetting,
    budget,
    check_page,
    detect_base,
    query_url,
    since_instant,
)
from syncd.model import ParsedEntry, ParsedPage

NOW = datetime(2026, 11, 28, 7, 0, tzinfo=UTC)
BLOGGER_NS = "http://schemas.google.com/blogger/2008"


def page(**kw: object) -> ParsedPage:
    base = ParsedPage(url="https://example.org/feed", feed_title="t", next_url=None, entries=())
    return replace(base, **kw)  # type: ignore[arg-type]


def entry(i: int, updated: datetime | None) -> ParsedEntry:
    return ParsedEntry(
        entry_id=f"e{i}",
        id_source="id",
        title=None,
        link=None,
        published=None,
        updated=updated,
        authors=(),
        categories=(),
        summary=None,
        content=None,
        links=(),
        base_url=None,
        content_hash="h",
    )


def test_blogger_is_recognised_by_its_url_shape_after_redirects() -> None:
    url = "https://example.blogspot.com/feeds/posts/default?alt=atom&start-index=26"
    assert detect_base(page(), url) == "https://example.blogspot.com/feeds/posts/default?alt=atom"
    deep = "https://www.blogger.com/feeds/21224994/posts/default"
    assert detect_base(page(), deep) == deep


def test_feedburner_fronted_blogger_is_asked_where_its_next_links_point() -> None:
    nxt = "http://www.blogger.com/feeds/21224994/posts/default?start-index=26&max-results=25"
    fronted = page(next_url=nxt, generator="Blogger")
    base = detect_base(fronted, "http://feeds.feedburner.com/blogspot/gJZg")
    assert base == "http://www.blogger.com/feeds/21224994/posts/default"


def test_blogger_is_recognised_by_its_generator_or_gdata_namespaces() -> None:
    url = "https://blog.example.org/atom.xml"
    assert detect_base(page(generator="Blogger"), url) == url
    assert detect_base(page(namespaces=(BLOGGER_NS,)), url) == url
    assert detect_base(page(generator="WordPress"), url) is None


def test_query_url_auto_off_and_template() -> None:
    since = datetime(2017, 7, 21, 19, 45, 12, 106000, tzinfo=UTC)
    base = "https://www.blogger.com/feeds/1/posts/default"
    url = query_url(ChangesSetting(), base, since)
    assert url is not None
    query = parse_qs(urlsplit(url).query)
    assert query == {"orderby": ["updated"], "updated-min": ["2017-07-21T19:45:12.106Z"]}
    assert query_url(ChangesSetting(mode="off"), base, since) is None
    assert query_url(ChangesSetting(), None, since) is None
    templated = query_url(
        ChangesSetting(template="https://x.org/c?since={updated_min}"), None, since
    )
    assert templated == "https://x.org/c?since=2017-07-21T19%3A45%3A12.106Z"


def test_since_is_the_newest_stored_less_the_overlap_unless_pinned() -> None:
    newest = NOW - timedelta(days=3)
    assert since_instant(newest, None, NOW) == newest - OVERLAP
    pinned = NOW - timedelta(days=9)
    assert since_instant(newest, pinned, NOW) == pinned
    # A stamp from a wrong clock far in the future must not hide every edit before it.
    assert since_instant(NOW + timedelta(days=400), None, NOW) == NOW - OVERLAP
    assert since_instant(None, None, NOW) == NOW - OVERLAP


def test_an_answer_that_ignored_the_query_is_malformed() -> None:
    since = NOW - timedelta(hours=1)
    good = page(entries=(entry(1, NOW), entry(2, NOW - timedelta(minutes=30))))
    assert check_page(good, since) is None
    assert check_page(page(), since) is None  # nothing changed
    old = page(entries=(entry(1, NOW), entry(2, since - timedelta(days=1))))
    assert "ignored" in (check_page(old, since) or "")
    unordered = page(entries=(entry(1, NOW - timedelta(minutes=30)), entry(2, NOW)))
    assert "ordered" in (check_page(unordered, since) or "")
    assert "no <updated>" in (check_page(page(entries=(entry(1, None),)), since) or "")


def test_the_poll_budget_leaves_the_changes_query_at_least_one_request() -> None:
    assert budget(1) == 2
    assert budget(2) == 1
    assert budget(7) == 1
