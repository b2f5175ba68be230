"""A hypothesis state machine: random edits to a live paged feed, random incremental and full
syncs through the real app, and after every full sync the store and the event log are checked
against the truth the feed model holds (DESIGN §4).

Invariants checked after each full sync:
- the store holds every entry the feed lists, with the feed's exact `updated` and content hash;
- an entry absent from a complete full crawl is deleted (with one `entry.deleted`): the server's
  openSearch:totalResults is always true, so the crawl's count vouches for its absences;
- event ids are unique; each entry's events form a chain where every event moves it to a new
  state (no duplicate, no event for a comment-count change), starting with `entry.created`;
- between two full syncs, an entry whose state changed has at least one event and at most one
  per sync that ran in between (no spurious events), and one never edited has none.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
from contextlib import AsyncExitStack
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from syncd.app import App, build_app
from syncd.config import load_config
from syncd.parse import parse_page
from tests.conftest import db_rows, write_config
from tests.support.envelopes import envelopes
from tests.support.feedserver import BloggerFeed, serve_feed

PAGE = 5

State = tuple[str | None, str]  # (updated, content_hash)


class FeedSync(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.stack = AsyncExitStack()
        self.tmp = TemporaryDirectory()
        self.feed = BloggerFeed(18, page_size=PAGE)
        self.app: App | None = None
        self.removed: list[str] = []
        # Entries edited or touched since the last full sync: the changes query may report a
        # state that a later edit undid, so only these may have events despite ending unchanged.
        self.moved: set[str] = set()
        self.absent_full: dict[str, int] = {}  # id ─► complete full crawls since it left the feed
        self.syncs_since_full = 0
        self.store_model: dict[str, State] = {}  # what the store should hold live, per id
        self.events_at_full = 0

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    @initialize()
    def start(self) -> None:
        server = self.run(self.stack.enter_async_context(serve_feed(self.feed)))
        path = write_config(
            Path(self.tmp.name),
            feeds=[{"name": "f", "url": server.url + f"?max-results={PAGE}"}],
            fetch={"parse_workers": 1},
        )
        config = load_config(path)
        self.app = self.run(self.stack.enter_async_context(build_app(config, rng=random.Random(0))))
        self.full_sync()

    def teardown(self) -> None:
        self.run(self.stack.aclose())
        self.loop.close()
        self.tmp.cleanup()

    # ----- the truth -----

    def truth(self) -> dict[str, State]:
        """Every entry the feed lists now, read from its own pages with the product's parser
        (whose output is pinned by golden-file tests)."""
        out: dict[str, State] = {}
        for start in range(1, len(self.feed) + 1, PAGE):
            page = parse_page(self.feed.render_page(start, PAGE), url="http://x/", headers={})
            for e in page.entries:
                out[e.entry_id] = (e.updated.isoformat() if e.updated else None, e.content_hash)
        return out

    def pick(self, data: st.DataObject) -> str:
        return str(data.draw(st.sampled_from(self.feed.ids())))

    # ----- edits -----

    @rule()
    def add(self) -> None:
        self.feed.add_entry("A new post")

    @precondition(lambda self: len(self.feed) > 0)
    @rule(data=st.data())
    def edit(self, data: st.DataObject) -> None:
        entry_id = self.pick(data)
        self.moved.add(entry_id)
        self.feed.edit_entry(entry_id)

    @precondition(lambda self: len(self.feed) > 0)
    @rule(data=st.data(), delta=st.sampled_from([1, -1, 1000]))
    def touch(self, data: st.DataObject, delta: int) -> None:
        entry_id = self.pick(data)
        self.moved.add(entry_id)
        self.feed.touch(entry_id, delta)

    @precondition(lambda self: len(self.feed) > 0)
    @rule(data=st.data(), n=st.integers(0, 20))
    def comments(self, data: st.DataObject, n: int) -> None:
        self.feed.set_comment_count(self.pick(data), n)

    @precondition(lambda self: len(self.feed) > 1)
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        victim = self.pick(data)
        self.feed.delete_entry(victim)
        self.removed.append(victim)
        self.absent_full[victim] = 0

    @precondition(lambda self: bool(self.removed))
    @rule(data=st.data())
    def restore(self, data: st.DataObject) -> None:
        back = data.draw(st.sampled_from(self.removed))
        self.removed.remove(back)
        self.feed.restore_entry(back)
        del self.absent_full[back]

    # ----- syncs -----

    def sync(self, *, full: bool) -> bool:
        """Whether the sync was a full crawl (an incremental one turns full on a count drop)."""
        assert self.app is not None
        (report,) = self.run(self.app.sync_feeds(self.app.config.feeds, full=full, force=True))
        assert report.completed, report.error
        return bool(report.full)

    @rule()
    def incremental_sync(self) -> None:
        if self.sync(full=False):
            self.after_full()
        else:
            self.syncs_since_full += 1

    @rule()
    def full_sync(self) -> None:
        self.sync(full=True)
        self.after_full()

    def after_full(self) -> None:
        self.syncs_since_full += 1
        for victim in self.absent_full:
            self.absent_full[victim] += 1
        self.check_after_full()
        self.syncs_since_full = 0
        self.moved.clear()

    # ----- checks -----

    def events(self) -> list[dict[str, Any]]:
        assert self.app is not None
        return [json.loads(r[2]) for r in envelopes(self.app.config.store.path)]

    def check_after_full(self) -> None:
        assert self.app is not None
        truth = self.truth()
        db = self.app.config.store.path
        stored = {
            r[0]: ((r[1], r[2]), r[3])
            for r in db_rows(db, "SELECT entry_id, updated, content_hash, deleted_at FROM entries")
        }
        for i, state in truth.items():
            (updated, digest), deleted_at = stored[i]
            assert deleted_at is None, i
            assert digest == state[1], i
            assert updated == _fmt(state[0]), i
        for i, crawls in self.absent_full.items():
            if i in stored:
                # The server's totalResults is always true, so the first complete crawl after a
                # deletion lists exactly that many ids: counted evidence, deleted at once.
                assert stored[i][1] is not None, (i, crawls)

        events = self.events()
        ids = [e["id"] for e in events]
        assert len(ids) == len(set(ids)), "duplicate event ids"
        chains: dict[str, list[dict[str, Any]]] = {}
        for e in events:
            chains.setdefault(e["data"]["entry"]["id"], []).append(e)
        for entry_id, chain in chains.items():
            assert chain[0]["type"] == "entry.created", entry_id
            for prev, cur in itertools.pairwise(chain):
                if cur["type"] == "entry.updated":
                    assert prev["type"] != "entry.deleted", entry_id
                    assert cur["data"]["previous"]["updated"] == prev["data"]["entry"]["updated"]
                if cur["type"] == "entry.created":
                    assert prev["type"] == "entry.deleted", entry_id
                if cur["type"] == "entry.deleted":
                    assert prev["type"] != "entry.deleted", entry_id
            if entry_id in truth:
                assert chain[-1]["type"] != "entry.deleted", entry_id
                assert chain[-1]["data"]["entry"]["updated"] == _fmt(truth[entry_id][0])

        # Between two full syncs: an entry whose state changed (or that is new, or came back
        # after its deletion) has 1..(syncs in between) events, an unchanged one none: comment
        # counts, shifted pages and re-reads add nothing.
        new = events[self.events_at_full :]
        per_entry: dict[str, list[str]] = {}
        for e in new:
            per_entry.setdefault(e["data"]["entry"]["id"], []).append(e["type"])
        for i, state in truth.items():
            got = per_entry.get(i, [])
            if self.store_model.get(i) != state:
                assert 1 <= len(got) <= self.syncs_since_full, (i, got)
            elif i in self.moved:  # changed and changed back: intermediate states may show
                assert len(got) <= self.syncs_since_full, (i, got)
            else:
                assert got == [], (i, got)
        # Entries the feed dropped: deleted exactly when the first complete crawl missed them.
        for i, crawls in self.absent_full.items():
            got = per_entry.get(i, [])
            if crawls == 1 and i in self.store_model:
                assert got and got[-1] == "entry.deleted" and got.count("entry.deleted") == 1
            elif crawls != 1:
                assert "entry.deleted" not in got, (i, got)
        self.store_model = dict(truth)
        self.events_at_full = len(events)

    @invariant()
    def seq_is_monotonic(self) -> None:
        if self.app is None:
            return
        seqs = [e["data"]["seq"] for e in self.events()]
        assert seqs == sorted(seqs) and len(seqs) == len(set(seqs))


def _fmt(iso: str | None) -> str | None:
    """The store's text form of an instant (ISO-8601 UTC, milliseconds)."""
    if iso is None:
        return None
    from datetime import datetime

    from syncd.timestamps import format_timestamp

    return format_timestamp(datetime.fromisoformat(iso))


FeedSync.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    derandomize=True,
)
TestFeedSync = FeedSync.TestCase
