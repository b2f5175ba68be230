"""The yardstick syncd is measured against: aiohttp + lxml, no store, no events, no safety.

Fetches every feed URL (conditional GET with the ETags a previous run left in STATE), parses each
200 with lxml, reads every entry's id, updated, title, content and link, hashes the content, and
follows rel="next" links. This is the least work any feed syncer must do; run as its own process.

    .venv/bin/python bench/yardstick.py URLS_FILE STATE_FILE [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
from pathlib import Path

import aiohttp
from lxml import etree

ATOM = "{http://www.w3.org/2005/Atom}"


def read_entries(body: bytes) -> tuple[int, str | None]:
    """(entries read, next URL) of one Atom or RSS 2.0 document."""
    root = etree.fromstring(body, etree.XMLParser(resolve_entities=False, no_network=True))
    count = 0
    for entry in root.iter(f"{ATOM}entry", "item"):
        fields = {child.tag: child for child in entry}
        for tag in (f"{ATOM}id", f"{ATOM}updated", f"{ATOM}title", "guid", "pubDate", "title"):
            child = fields.get(tag)
            _ = child.text if child is not None else None
        content = fields.get(f"{ATOM}content", fields.get("description"))
        hashlib.sha256(((content.text or "") if content is not None else "").encode()).hexdigest()
        _ = [link.get("href") for link in entry.iter(f"{ATOM}link")]
        count += 1
    next_url = None
    for link in root.iterchildren(f"{ATOM}link"):
        if link.get("rel") == "next":
            next_url = link.get("href")
    return count, next_url


async def sync_feed(
    session: aiohttp.ClientSession, url: str, etags: dict[str, str], totals: dict[str, int]
) -> None:
    next_url: str | None = url
    while next_url:
        headers = {"If-None-Match": etags[next_url]} if next_url in etags else {}
        async with session.get(next_url, headers=headers) as resp:
            if resp.status == 304:
                totals["not_modified"] += 1
                return  # unchanged: a real syncer would know the rest from its store
            resp.raise_for_status()
            body = await resp.read()
            if resp.headers.get("ETag"):
                etags[next_url] = resp.headers["ETag"]
        entries, next_url = read_entries(body)
        totals["pages"] += 1
        totals["entries"] += entries


async def sync_all(urls: list[str], etags: dict[str, str], concurrency: int) -> dict[str, int]:
    totals = {"pages": 0, "entries": 0, "not_modified": 0}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(sync_feed(session, url, etags, totals) for url in urls))
    return totals


def main(urls_file: Path, state_file: Path, concurrency: int) -> None:
    urls = [line.strip() for line in urls_file.read_text().splitlines() if line.strip()]
    etags: dict[str, str] = json.loads(state_file.read_text()) if state_file.exists() else {}
    totals = asyncio.run(sync_all(urls, etags, concurrency))
    state_file.write_text(json.dumps(etags))
    print(json.dumps(totals))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("urls_file", type=Path)
    ap.add_argument("state_file", type=Path)
    ap.add_argument("--concurrency", type=int, default=64)
    args = ap.parse_args()
    main(args.urls_file, args.state_file, args.concurrency)
