"""Every page of a paged feed, fetched by following its `rel="next"` links: the raw bytes a
benchmark compares a store or a parse with. Parsed with feedparser, as a reader would."""

from __future__ import annotations

import aiohttp
import feedparser


async def fetch_pages(url: str) -> list[bytes]:
    bodies: list[bytes] = []
    async with aiohttp.ClientSession() as session:
        next_url: str | None = url
        while next_url:
            async with session.get(next_url) as resp:
                body = await resp.read()
            bodies.append(body)
            parsed = feedparser.parse(body, sanitize_html=False, resolve_relative_uris=False)
            next_url = next(
                (lk["href"] for lk in parsed.feed.get("links", []) if lk.get("rel") == "next"), None
            )
    return bodies
