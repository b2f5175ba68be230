"""`syncd preview URL`: the real fetch (address guard included) and parse paths, run against
local servers, report entries, next links, validators, hub and self links, the parse path, and
what a sync would do; and nothing is written: no database is created, an existing one is left
byte for byte as it was."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tests.conftest import syncd, write_config
from tests.support.documents import serve_documents
from tests.support.feedserver import BloggerFeed, serve_feed


def fingerprint(directory: Path) -> dict[str, tuple[str, int]]:
    return {
        p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(directory.glob("syncd.db*"))
    }


async def test_preview_reports_a_paged_feed_and_writes_nothing(tmp_path: Path) -> None:
    feed = BloggerFeed(60)
    async with serve_feed(feed) as server:
        config = write_config(tmp_path, feeds=[])
        result = await syncd(config, "preview", server.url, "--json", "--pages", "2")
        assert result.code == 0, result.stderr
        assert not (tmp_path / "syncd.db").exists()  # nothing created

        data = json.loads(result.stdout)
        page1, page2 = data["pages"]
        assert [e["id"] for e in page1["entries"] + page2["entries"]] == feed.ids()[:50]
        first = page1["entries"][0]
        assert first["title"] == feed.entry(feed.ids()[0]).title
        assert first["updated"].endswith("Z") and "." in first["updated"]  # milliseconds
        assert page1["next"] and page1["next"] == page2["url"]
        assert page1["etag"] and page1["last_modified"] and page1["status"] == 200
        assert page1["parse_path"] == "fast (lxml)" and page1["declined"] is None
        assert page1["total_results"] == 60 and page1["title"] == "Google Research Blog"
        assert data["hub"] == "http://pubsubhubbub.appspot.com/"
        assert data["self"] == server.url  # the test server names the URL asked for
        plan = "\n".join(data["syncd_would"])
        assert "walk the next links, about 3 pages (60 entries)" in plan
        assert "If-None-Match and If-Modified-Since" in plan
        assert "changes query, e.g. http" in plan and "orderby=updated" in plan
        assert "subscribe to WebSub hub http://pubsubhubbub.appspot.com/" in plan

        # With a store already there: the same bytes, the same mtimes, after a preview.
        config = write_config(tmp_path, feeds=[{"name": "blog", "url": server.url}])
        assert (await syncd(config, "sync")).code == 0
        before = fingerprint(tmp_path)
        text = await syncd(config, "preview", server.url)
        assert text.code == 0, text.stderr
        assert fingerprint(tmp_path) == before
        assert "fast (lxml)" in text.stdout and feed.ids()[0] in text.stdout


async def test_preview_names_the_parse_path_and_the_guard_and_failures(tmp_path: Path) -> None:
    doctype = (
        b'<?xml version="1.0"?><!DOCTYPE feed><feed xmlns="http://www.w3.org/2005/Atom">'
        b"<title>T</title><id>urn:t</id><updated>2024-01-01T00:00:00Z</updated>"
        b"<entry><id>urn:e1</id><title>One</title><updated>2024-01-01T00:00:00.250Z</updated>"
        b"</entry></feed>"
    )
    docs = {"/doctype": doctype, "/html": b"<html><body>not a feed</body></html>"}
    async with serve_documents(docs) as base:
        config = write_config(tmp_path, feeds=[])
        result = await syncd(config, "preview", f"{base}/doctype", "--json")
        assert result.code == 0, result.stderr
        (page,) = json.loads(result.stdout)["pages"]
        assert page["parse_path"] == "feedparser" and "DOCTYPE" in page["declined"]
        assert page["entries"] == [
            {
                "id": "urn:e1",
                "id_source": "id",
                "updated": "2024-01-01T00:00:00.250Z",
                "published": None,
                "title": "One",
                "link": None,
            }
        ]
        assert page["etag"] is None
        plan = json.loads(result.stdout)["syncd_would"]
        assert any("without validators" in s for s in plan)

        html = await syncd(config, "preview", f"{base}/html")
        assert html.code == 1
        (line,) = html.stderr.strip().splitlines()
        assert line.startswith(f"syncd: {base}/html: ") and "HTML" in line

    # The real address guard: the feed's own (loopback) host is trusted, its next link to
    # another loopback name is not, unless private networks are allowed.
    async with serve_feed(BloggerFeed(30)) as server:
        guarded = write_config(tmp_path, feeds=[], fetch={"allow_private_networks": False})
        walk = await syncd(guarded, "preview", server.url, "--pages", "2", "--json")
    assert walk.code == 0, walk.stderr
    data = json.loads(walk.stdout)
    assert len(data["pages"]) == 1
    assert data["error"].startswith(server.alt_url.split("/feeds")[0])
    assert "private" in data["error"] or "blocked" in data["error"]
