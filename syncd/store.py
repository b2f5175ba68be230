"""The SQLite store: every SQL statement syncd runs lives behind this module's interface.

One writer connection in WAL mode; every write is one `BEGIN IMMEDIATE` transaction, so a crawl
page's entries, versions, outbox events and deliveries land together or not at all. This module
decides nothing about feeds or retries: it records what the pure modules decided.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from syncd import search
from syncd.diff import DEFAULT_HASH_ONLY_CAP
from syncd.errors import StoreError
from syncd.migrations import migrations
from syncd.model import (
    Change,
    ChangeKind,
    Deletion,
    EventDraft,
    FetchResult,
    Link,
    ParsedPage,
    Person,
    StoredEntry,
    Validators,
)
from syncd.moves import MoveState
from syncd.outbox import Outbox
from syncd.timestamps import format_timestamp, from_text, to_text

BUSY_TIMEOUT_MS = 10_000


def _ms(dt: datetime | None) -> str | None:
    """Bookkeeping instants (next due, last fetch) at a fixed millisecond precision, so that SQL
    compares them correctly as text: "…12.5Z" would sort after "…12.123456Z"."""
    if dt is None:
        return None
    return format_timestamp(dt.replace(microsecond=dt.microsecond // 1000 * 1000))


def _people(raw: str | None) -> tuple[Person, ...]:
    return tuple(Person(**p) for p in json.loads(raw or "[]"))


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def person_dict(p: Person) -> dict[str, str | None]:
    return {"name": p.name, "email": p.email, "uri": p.uri}


def link_dict(link: Link) -> dict[str, str | None]:
    return {
        "href": link.href,
        "rel": link.rel,
        "type": link.type,
        "title": link.title,
        "length": link.length,
    }


@dataclass(frozen=True)
class FeedState:
    """A feed's row: what the scheduler and the syncer need to know about its history."""

    id: int
    name: str
    url: str
    title: str | None
    first_synced_at: datetime | None
    last_fetch_at: datetime | None
    last_outcome: str | None
    last_error: str | None
    consecutive_errors: int
    next_due_at: datetime | None
    last_full_sync_at: datetime | None
    retry_after_until: datetime | None
    gone_at: datetime | None
    crawl_incomplete: bool = False  # a crawl committed pages and has not completed since
    adopted_url: str | None = None  # where the feed moved for good (301/308, stable)
    moved_to: str | None = None  # a permanent-redirect target not yet stable
    moved_seen: int = 0
    changes_base: str | None = None  # where the feed answers the changes query (detected)
    changes_off_until: datetime | None = None  # a refused changes query is not asked till then
    changes_error: str | None = None  # why the changes query was turned off
    changes_since: datetime | None = None  # an unfinished changes query resumes from here
    total_results: int | None = None  # openSearch:totalResults page 1 last stated
    page1_shortfall: int | None = None  # entries page 1 lacked for its stated page size
    full_crawl_reason: str | None = None  # set: the next poll walks the whole chain
    publisher_interval_s: float | None = None  # the feed's stated cadence (ttl, sy:*)
    publisher_interval_why: str | None = None


@dataclass(frozen=True)
class PageState:
    validators: Validators
    next_url: str | None  # where the walk continues: rel="next", else rel="prev-archive"
    entry_ids: tuple[str, ...]  # the ids the page listed when last parsed
    archive: bool  # an RFC 5005 archive document: immutable, never fetched again
    total_results: int | None = None  # openSearch:totalResults the page stated when parsed


@dataclass(frozen=True)
class ChangesOutcome:
    """What a poll learnt about a feed's changes query, recorded with its outcome."""

    base: str | None  # where the feed answers it (None: it does not)
    since: datetime | None  # pinned: the next query resumes here (None: from the store's newest)
    off_until: datetime | None = None
    error: str | None = None
    keep_pages: tuple[str, ...] | None = None  # changes-page URLs to keep (None: keep all)


@dataclass(frozen=True)
class CrawlOutcome:
    """How a crawl ended, as recorded on the feed row."""

    outcome: str  # ok | not_modified | error | gone | throttled
    error: str | None
    next_due_at: datetime
    consecutive_errors: int
    full: bool  # a full crawl that completed
    completed: bool  # reached the end of the chain (or max_pages) without error
    retry_after_until: datetime | None = None
    title: str | None = None
    move: MoveState | None = None  # None: the first page was not fetched, keep what is known
    changes: ChangesOutcome | None = None  # None: the poll did not touch the changes query
    next_due_reason: str | None = None
    counted: tuple[int | None, int | None] | None = None  # page 1's (total, shortfall), if parsed
    full_crawl_reason: str | None = None  # ask for a full crawl at the next poll
    publisher: tuple[float | None, str | None] | None = None  # page 1's stated cadence, if parsed


class Store:
    """The writer's handle on the database. Not thread-safe; one per process."""

    def __init__(self, db: Database, path: Path) -> None:
        self.db = db
        self.path = path
        self.outbox = Outbox(self)

    @classmethod
    def open(cls, path: Path) -> Store:
        """The store at `path` for reading and writing, created (with its directory) and
        migrated as needed. Every failure is a StoreError naming the path."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000)
        except FileExistsError:  # mkdir's word for "a file is in the way"
            raise StoreError(
                f"cannot open database {str(path)!r}: {str(path.parent)!r} is not a directory"
            ) from None
        except (OSError, sqlite3.Error) as e:
            raise _open_error(path, e) from e
        try:
            db = Database(conn)
            db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            db.enable_wal()
            # NORMAL is durable across process crashes in WAL mode; only an OS crash can lose the
            # last transactions, never corrupt the file.
            db.execute("PRAGMA synchronous = NORMAL")
            db.execute("PRAGMA foreign_keys = ON")
            migrations.apply(db)
        except sqlite3.Error as e:
            conn.close()
            raise _open_error(path, e) from e
        return cls(db, path)

    @classmethod
    def open_existing(cls, path: Path) -> Store:
        """The store at `path` read-only, for commands that only look: never creates a file or
        a directory, never migrates, and a write through it fails. A missing or not yet
        migrated database is a StoreError naming the path."""
        if not path.is_file():
            raise StoreError(
                f"no database at {str(path)!r} (check [store] path, or run `syncd sync` first)"
            )
        try:
            conn = sqlite3.connect(
                f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000
            )
            db = Database(conn)
            db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            pending = migrations.pending(db)
        except sqlite3.Error as e:
            raise _open_error(path, e) from e
        if pending:
            conn.close()
            raise StoreError(
                f"database {str(path)!r} predates this syncd ({len(pending)} migrations pending);"
                " `syncd sync` or `syncd run` upgrades it"
            )
        return cls(db, path)

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One immediate transaction: a deferred BEGIN that later writes ignores busy_timeout."""
        conn = self.db.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.Error as e:
            # Disk full, "database is locked" past busy_timeout, corruption: one readable
            # StoreError for the callers, who record it and back off.
            if conn.in_transaction:
                conn.rollback()
            raise StoreError(f"database error in {str(self.path)!r}: {e}") from e

    def rows(
        self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()
    ) -> list[dict[str, Any]]:
        try:
            cur = self.db.conn.execute(sql, params)
            cols = [c[0] for c in cur.description]
            return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
        except sqlite3.Error as e:
            raise StoreError(f"database error in {str(self.path)!r}: {e}") from e

    # ---------------------------------------------------------------- feeds

    def ensure_feed(self, name: str, url: str, now: datetime) -> FeedState:
        """The feed's row, created on first sight. The configured URL wins over a stored one."""
        with self.write() as conn:
            conn.execute(
                "INSERT INTO feeds (name, url, created_at, consecutive_errors) VALUES (?, ?, ?, 0)"
                # A new configured URL is the operator's word: it replaces any adopted move.
                " ON CONFLICT(name) DO UPDATE SET url = excluded.url, adopted_url = NULL,"
                " moved_to = NULL, moved_seen = 0 WHERE url != excluded.url",
                (name, url, to_text(now)),
            )
        return self.feed_state(name)

    def feed_state(self, name: str) -> FeedState:
        rows = self.rows("SELECT * FROM feeds WHERE name = ?", (name,))
        if not rows:
            raise StoreError(f"feed {name!r} is not in the store")
        r = rows[0]
        return FeedState(
            id=r["id"],
            name=r["name"],
            url=r["url"],
            title=r["title"],
            first_synced_at=from_text(r["first_synced_at"]),
            last_fetch_at=from_text(r["last_fetch_at"]),
            last_outcome=r["last_outcome"],
            last_error=r["last_error"],
            consecutive_errors=r["consecutive_errors"] or 0,
            next_due_at=from_text(r["next_due_at"]),
            last_full_sync_at=from_text(r["last_full_sync_at"]),
            retry_after_until=from_text(r["retry_after_until"]),
            gone_at=from_text(r["gone_at"]),
            crawl_incomplete=bool(r["crawl_incomplete"]),
            adopted_url=r["adopted_url"],
            moved_to=r["moved_to"],
            moved_seen=r["moved_seen"] or 0,
            changes_base=r["changes_base"],
            changes_off_until=from_text(r["changes_off_until"]),
            changes_error=r["changes_error"],
            changes_since=from_text(r["changes_since"]),
            total_results=r["total_results"],
            page1_shortfall=r["page1_shortfall"],
            full_crawl_reason=r["full_crawl_reason"],
            publisher_interval_s=r["publisher_interval_s"],
            publisher_interval_why=r["publisher_interval_why"],
        )

    def recent_entries(self, feed_id: int, since: datetime) -> int:
        """Live entries published since `since` (for `interval = "auto"`)."""
        rows = self.rows(
            "SELECT COUNT(*) AS n FROM entries WHERE feed_id = ? AND deleted_at IS NULL"
            " AND COALESCE(published, updated) >= ?",
            (feed_id, _ms(since)),
        )
        return int(rows[0]["n"])

    def reschedule(self, feed_id: int, at: datetime, reason: str) -> None:
        with self.write() as conn:
            conn.execute(
                "UPDATE feeds SET next_due_at = ?, next_due_reason = ? WHERE id = ?",
                (_ms(at), reason, feed_id),
            )

    def newest_updated(self, feed_id: int) -> datetime | None:
        """The newest `updated` of the feed's entries. Text order is instant order except
        within one second (fraction lengths differ), so the newest few are compared exactly."""
        rows = self.rows(
            "SELECT updated FROM entries WHERE feed_id = ? AND updated IS NOT NULL"
            " ORDER BY updated DESC LIMIT 16",
            (feed_id,),
        )
        stamps = [t for t in (from_text(r["updated"]) for r in rows) if t is not None]
        return max(stamps, default=None)

    def due_feeds(self, now: datetime) -> list[str]:
        """Names of feeds whose next poll is due, that are not gone (410), most overdue first."""
        return [
            r["name"]
            for r in self.rows(
                "SELECT name FROM feeds WHERE gone_at IS NULL"
                " AND (next_due_at IS NULL OR next_due_at <= ?)"
                " ORDER BY next_due_at IS NOT NULL, next_due_at",
                (_ms(now),),
            )
        ]

    def finish_crawl(self, feed_id: int, now: datetime, outcome: CrawlOutcome) -> None:
        move = outcome.move
        adopt = move is not None and move.adopt
        with self.write() as conn:
            conn.execute(
                """UPDATE feeds SET last_fetch_at = ?, last_outcome = ?, last_error = ?,
                   consecutive_errors = ?, next_due_at = ?, retry_after_until = ?,
                   title = COALESCE(?, title),
                   first_synced_at = CASE WHEN ? THEN COALESCE(first_synced_at, ?)
                                     ELSE first_synced_at END,
                   last_full_sync_at = CASE WHEN ? THEN ? ELSE last_full_sync_at END,
                   gone_at = CASE WHEN ? = 'gone' THEN COALESCE(gone_at, ?) ELSE NULL END,
                   crawl_incomplete = CASE WHEN ? THEN 0 ELSE crawl_incomplete END,
                   adopted_url = CASE WHEN ? THEN ? ELSE adopted_url END,
                   moved_to = CASE WHEN ? THEN ? ELSE moved_to END,
                   moved_seen = CASE WHEN ? THEN ? ELSE moved_seen END,
                   next_due_reason = ?,
                   full_crawl_reason = CASE WHEN ? THEN NULL ELSE full_crawl_reason END
                   WHERE id = ?""",
                (
                    to_text(now),
                    outcome.outcome,
                    outcome.error,
                    outcome.consecutive_errors,
                    _ms(outcome.next_due_at),
                    _ms(outcome.retry_after_until),
                    outcome.title,
                    outcome.completed,
                    to_text(now),
                    outcome.full and outcome.completed,
                    to_text(now),
                    outcome.outcome,
                    to_text(now),
                    outcome.completed,
                    adopt,
                    move.moved_to if move else None,
                    move is not None,
                    None if adopt or move is None else move.moved_to,
                    move is not None,
                    0 if adopt or move is None else move.seen,
                    outcome.next_due_reason,
                    outcome.full and outcome.completed,
                    feed_id,
                ),
            )
            if outcome.full_crawl_reason is not None:
                conn.execute(
                    "UPDATE feeds SET full_crawl_reason = ? WHERE id = ?",
                    (outcome.full_crawl_reason, feed_id),
                )
            if outcome.publisher is not None:
                conn.execute(
                    "UPDATE feeds SET publisher_interval_s = ?, publisher_interval_why = ?"
                    " WHERE id = ?",
                    (*outcome.publisher, feed_id),
                )
            if outcome.counted is not None:
                conn.execute(
                    "UPDATE feeds SET total_results = ?, page1_shortfall = ? WHERE id = ?",
                    (*outcome.counted, feed_id),
                )
            changes = outcome.changes
            if changes is not None:
                conn.execute(
                    "UPDATE feeds SET changes_base = ?, changes_since = ?, changes_off_until = ?,"
                    " changes_error = ? WHERE id = ?",
                    (
                        changes.base,
                        _ms(changes.since),
                        _ms(changes.off_until),
                        changes.error,
                        feed_id,
                    ),
                )
            if outcome.full and outcome.completed:
                # A complete walk saw every entry: the changes query starts afresh from it.
                conn.execute("UPDATE feeds SET changes_since = NULL WHERE id = ?", (feed_id,))
            if changes is not None and changes.keep_pages is not None:
                # Each changes query has its own URL (its instant moves): keep only the latest.
                marks = ",".join("?" * len(changes.keep_pages))
                conn.execute(
                    f"DELETE FROM pages WHERE feed_id = ? AND partial = 1 AND url NOT IN ({marks})",
                    (feed_id, *changes.keep_pages),
                )

    # ---------------------------------------------------------------- pages

    def page_state(self, feed_id: int, url: str) -> PageState | None:
        rows = self.rows(
            "SELECT etag, last_modified, body_hash, next_url, entry_ids, archive, total_results"
            " FROM pages"
            " WHERE feed_id = ? AND url = ?",
            (feed_id, url),
        )
        if not rows:
            return None
        r = rows[0]
        return PageState(
            Validators(r["etag"], r["last_modified"], r["body_hash"]),
            r["next_url"],
            tuple(json.loads(r["entry_ids"] or "[]")),
            bool(r["archive"]),
            r["total_results"],
        )

    def record_unchanged_page(self, feed_id: int, result: FetchResult, now: datetime) -> None:
        """A 304 or an identical body: refresh validators (a 304 may carry new ones)."""
        with self.write() as conn:
            conn.execute(
                "UPDATE pages SET fetched_at = ?, etag = COALESCE(?, etag),"
                " last_modified = COALESCE(?, last_modified) WHERE feed_id = ? AND url = ?",
                (to_text(now), result.etag, result.last_modified, feed_id, result.url),
            )

    # ---------------------------------------------------------------- entries

    _ENTRY_COLUMNS = (
        "entry_id, updated, content_hash, title, link, published, authors, categories, summary,"
        " content, deleted_at, hash_only_updates, revision, base_url, missing_crawls"
    )

    @staticmethod
    def _stored(r: Mapping[str, Any]) -> StoredEntry:
        return StoredEntry(
            entry_id=r["entry_id"],
            updated=from_text(r["updated"]),
            content_hash=r["content_hash"],
            title=r["title"],
            link=r["link"],
            published=from_text(r["published"]),
            authors=_people(r["authors"]),
            categories=tuple(json.loads(r["categories"] or "[]")),
            summary=r["summary"],
            content=r["content"],
            deleted_at=from_text(r["deleted_at"]),
            hash_only_updates=r["hash_only_updates"] or 0,
            revision=r["revision"] or 0,
            base_url=r["base_url"],
            missing_crawls=r["missing_crawls"] or 0,
        )

    def known_entries(self, feed_id: int, entry_ids: Iterable[str]) -> dict[str, StoredEntry]:
        ids = list(dict.fromkeys(entry_ids))
        found: dict[str, StoredEntry] = {}
        # Chunks stay under SQLite's host-parameter limit for any page size.
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            for r in self.rows(
                f"SELECT {self._ENTRY_COLUMNS} FROM entries"
                f" WHERE feed_id = ? AND entry_id IN ({marks})",
                [feed_id, *chunk],
            ):
                found[r["entry_id"]] = self._stored(r)
        return found

    def live_entries(self, feed_id: int) -> dict[str, StoredEntry]:
        """Every entry of the feed that is not deleted."""
        return {
            r["entry_id"]: self._stored(r)
            for r in self.rows(
                f"SELECT {self._ENTRY_COLUMNS} FROM entries"
                " WHERE feed_id = ? AND deleted_at IS NULL",
                (feed_id,),
            )
        }

    def commit_page(
        self,
        *,
        feed_id: int,
        result: FetchResult,
        page: ParsedPage,
        next_url: str | None,
        changes: Sequence[Change],
        silent: Sequence[Change],
        deletions: Sequence[Deletion],
        events: Sequence[EventDraft],
        routes: Mapping[str, Sequence[str]],
        now: datetime,
        partial: bool = False,
    ) -> list[int]:
        """Write one parsed page in one transaction; return the seqs of the events it created.

        `events` pair up with `changes` followed by `deletions` (same order). `silent` are changes
        stored without an event (a hash-only update past the cap). `routes` maps event id to the
        sinks that want it. A `partial` page (a changes-query page) is no step of a crawl: it
        does not mark the crawl incomplete.
        """
        if len(changes) + len(deletions) != len(events):
            raise ValueError("every change and deletion needs its event")
        now_s = to_text(now)
        seqs: list[int] = []
        with self.write() as conn:
            if not partial:
                # Until this crawl completes, the next poll must walk past this page (a 304).
                conn.execute("UPDATE feeds SET crawl_incomplete = 1 WHERE id = ?", (feed_id,))
            conn.execute(
                """INSERT INTO pages (feed_id, url, etag, last_modified, body_hash, next_url,
                   entry_count, fetched_at, entry_ids, archive, prev_archive_url, partial,
                   total_results)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT(feed_id, url) DO UPDATE SET etag = excluded.etag,
                   last_modified = excluded.last_modified, body_hash = excluded.body_hash,
                   next_url = excluded.next_url, entry_count = excluded.entry_count,
                   fetched_at = excluded.fetched_at, entry_ids = excluded.entry_ids,
                   archive = excluded.archive, prev_archive_url = excluded.prev_archive_url,
                   partial = excluded.partial, total_results = excluded.total_results""",
                (
                    feed_id,
                    result.url,
                    result.etag,
                    result.last_modified,
                    result.body_hash,
                    next_url,
                    len(page.entries),
                    now_s,
                    _dump(list(dict.fromkeys(e.entry_id for e in page.entries))),
                    int(page.archive and not page.malformed and not partial),
                    page.prev_archive_url,
                    int(partial),
                    page.total_results,
                ),
            )
            drafts = iter(events)
            for change, draft in zip(changes, drafts, strict=False):
                seq = self._insert_event(conn, feed_id, draft, routes.get(draft.id, ()), now)
                self._write_entry(conn, feed_id, change, draft.id, now_s)
                if seq is not None:
                    seqs.append(seq)
            for change in silent:
                self._write_entry(conn, feed_id, change, None, now_s)
            written = {c.entry.entry_id for c in (*changes, *silent)}
            conn.executemany(
                "UPDATE entries SET last_seen = ?, missing_crawls = 0"
                " WHERE feed_id = ? AND entry_id = ?",
                [(now_s, feed_id, e.entry_id) for e in page.entries if e.entry_id not in written],
            )
            seqs += self._delete(conn, feed_id, deletions, list(drafts), routes, now)
        return seqs

    def commit_crawl_presence(
        self,
        *,
        feed_id: int,
        seen: Collection[str],
        missing: Sequence[str],
        deletions: Sequence[Deletion],
        events: Sequence[EventDraft],
        routes: Mapping[str, Sequence[str]],
        now: datetime,
    ) -> list[int]:
        """After a complete full crawl: reset the absence count of every entry it listed, count
        one more absence for `missing`, and delete what the evidence condemns, in one transaction.
        """
        with self.write() as conn:
            conn.executemany(
                "UPDATE entries SET missing_crawls = 0 WHERE feed_id = ? AND entry_id = ?"
                " AND missing_crawls != 0",
                [(feed_id, i) for i in seen],
            )
            conn.executemany(
                "UPDATE entries SET missing_crawls = missing_crawls + 1"
                " WHERE feed_id = ? AND entry_id = ? AND deleted_at IS NULL",
                [(feed_id, i) for i in missing],
            )
            return self._delete(conn, feed_id, deletions, events, routes, now)

    def _delete(
        self,
        conn: sqlite3.Connection,
        feed_id: int,
        deletions: Sequence[Deletion],
        events: Sequence[EventDraft],
        routes: Mapping[str, Sequence[str]],
        now: datetime,
    ) -> list[int]:
        seqs: list[int] = []
        for deletion, draft in zip(deletions, events, strict=True):
            seq = self._insert_event(conn, feed_id, draft, routes.get(draft.id, ()), now)
            if seq is not None:
                seqs.append(seq)
            # The row stays (users query history); deleted_at marks it, revision moves on.
            conn.execute(
                "UPDATE entries SET deleted_at = ?, deleted_reason = ?, revision = revision + 1"
                " WHERE feed_id = ? AND entry_id = ?",
                (to_text(now), deletion.reason, feed_id, deletion.entry.entry_id),
            )
            search.unindex_entry(conn, feed_id, deletion.entry.entry_id)
        return seqs

    def _write_entry(
        self,
        conn: sqlite3.Connection,
        feed_id: int,
        change: Change,
        event_id: str | None,
        now_s: str | None,
    ) -> None:
        e = change.entry
        hash_only = (
            (change.previous.hash_only_updates + 1) if change.hash_only and change.previous else 0
        )
        values = {
            "feed_id": feed_id,
            "entry_id": e.entry_id,
            "id_source": e.id_source,
            "title": e.title,
            "link": e.link,
            "published": to_text(e.published),
            "updated": to_text(e.updated),
            "authors": _dump([person_dict(p) for p in e.authors]),
            "categories": _dump(list(e.categories)),
            "summary": e.summary,
            "content": e.content,
            "links": _dump([link_dict(link) for link in e.links]),
            "base_url": e.base_url,
            "content_hash": e.content_hash,
            "hash_only_updates": hash_only,
            "first_seen": now_s,
            "last_seen": now_s,
        }
        cols = ", ".join(values)
        marks = ", ".join(f":{c}" for c in values)
        keep = {"feed_id", "entry_id", "first_seen"}
        updates = ", ".join(f"{c} = excluded.{c}" for c in values if c not in keep)
        conn.execute(
            f"INSERT INTO entries ({cols}, revision) VALUES ({marks}, 1)"
            f" ON CONFLICT(feed_id, entry_id) DO UPDATE SET {updates}, deleted_at = NULL,"
            " deleted_reason = NULL, missing_crawls = 0, revision = revision + 1",
            values,
        )
        conn.execute(
            """INSERT INTO entry_versions (feed_id, entry_id, event_id, recorded_at, title, link,
               published, updated, authors, categories, summary, content, content_hash)
               VALUES (:feed_id, :entry_id, :event_id, :now, :title, :link, :published, :updated,
               :authors, :categories, :summary, :content, :content_hash)""",
            {**values, "event_id": event_id, "now": now_s},
        )
        before = change.previous
        if (
            before is None
            or before.deleted_at is not None
            or (before.title, before.summary, before.content) != (e.title, e.summary, e.content)
        ):
            # Only changed text is re-tokenised: a hash-only update keeps its index row.
            search.index_entry(conn, feed_id, e.entry_id, e.title, e.summary, e.content)

    def _insert_event(
        self,
        conn: sqlite3.Connection,
        feed_id: int,
        draft: EventDraft,
        sinks: Sequence[str],
        now: datetime,
    ) -> int | None:
        """Insert the event (idempotent on its id) and its deliveries; None if it existed."""
        cur = conn.execute(
            "INSERT OR IGNORE INTO events (id, type, feed_id, entry_id, created_at, initial,"
            " payload) VALUES (?, ?, ?, ?, ?, ?, '')",
            (draft.id, str(draft.type), feed_id, draft.entry_id, to_text(now), int(draft.initial)),
        )
        if cur.rowcount == 0:
            return None
        seq = cur.lastrowid
        assert seq is not None
        envelope = {
            "id": draft.id,
            "type": str(draft.type),
            "timestamp": to_text(draft.timestamp),
            "data": {"seq": seq, **draft.data},
        }
        conn.execute("UPDATE events SET payload = ? WHERE seq = ?", (_dump(envelope), seq))
        conn.executemany(
            "INSERT INTO deliveries (event_seq, sink, state, attempts, created_at, next_attempt_at)"
            " VALUES (?, ?, 'pending', 0, ?, ?)",
            [(seq, sink, to_text(now), to_text(now)) for sink in sinks],
        )
        return seq

    # ---------------------------------------------------------------- status

    def feed_summaries(self, hash_only_cap: int = DEFAULT_HASH_ONLY_CAP) -> list[dict[str, Any]]:
        """Per feed: its row, live entries, entries whose hash-only updates reached the cap (now
        stored silently), and entries one complete crawl did not list (deleted at the next)."""
        return self.rows(
            """SELECT f.name, f.url, f.title, f.last_fetch_at, f.last_outcome, f.last_error,
               f.next_due_at, f.consecutive_errors, f.last_full_sync_at, f.first_synced_at,
               f.next_due_reason, f.changes_base, f.changes_off_until, f.changes_error,
               f.full_crawl_reason, f.total_results, f.publisher_interval_why, f.crawl_incomplete,
               (SELECT MAX(e.updated) FROM entries e WHERE e.feed_id = f.id
                  AND e.deleted_at IS NULL) AS newest_updated,
               (SELECT COUNT(*) FROM entries e WHERE e.feed_id = f.id AND e.deleted_at IS NULL)
                 AS entries,
               (SELECT COUNT(*) FROM entries e WHERE e.feed_id = f.id AND e.deleted_at IS NULL
                  AND e.hash_only_updates >= :cap) AS hash_only_capped,
               (SELECT COUNT(*) FROM entries e WHERE e.feed_id = f.id AND e.deleted_at IS NULL
                  AND e.missing_crawls > 0) AS missing_once
               FROM feeds f ORDER BY f.name""",
            {"cap": hash_only_cap},
        )

    def latest_events(self, feed: str | None, limit: int) -> list[dict[str, Any]]:
        """The newest events, of one feed or all: seq, id, type, feed, entry id, title, link."""
        return self.rows(
            """SELECT e.seq, e.id, e.type, f.name AS feed, e.entry_id, e.created_at,
                      json_extract(e.payload, '$.data.entry.title') AS title,
                      json_extract(e.payload, '$.data.entry.link') AS link
               FROM events e JOIN feeds f ON f.id = e.feed_id
               WHERE :feed IS NULL OR f.name = :feed
               ORDER BY e.seq DESC LIMIT :limit""",
            {"feed": feed, "limit": limit},
        )

    def schedule_rows(self) -> list[dict[str, Any]]:
        """Per feed, what the operator surfaces (metrics, health, status page) judge it by."""
        return self.rows(
            "SELECT name, last_fetch_at, last_outcome, consecutive_errors, next_due_at, gone_at"
            " FROM feeds ORDER BY name"
        )

    def queue_figures(self, sinks: Sequence[str]) -> list[dict[str, Any]]:
        """For each of `sinks` and each other sink with deliveries waiting: the waiting ones
        (`pending`), the creation time of the oldest (`oldest`), the dead ones (`dead`), and
        its pause and disabled marks."""
        # Every read is an index search (idx_deliveries_queue's WHERE, and (sink, state, ...)
        # for the dead): none reads the delivered history, however long it grows.
        return self.rows(
            """WITH q AS (SELECT sink, COUNT(*) AS pending, MIN(created_at) AS oldest
                          FROM deliveries WHERE state IN ('pending', 'failed') GROUP BY sink),
                    names(name) AS (SELECT value FROM json_each(?) UNION SELECT sink FROM q)
               SELECT names.name, COALESCE(q.pending, 0) AS pending, q.oldest,
                      (SELECT COUNT(*) FROM deliveries d
                       WHERE d.sink = names.name AND d.state = 'dead') AS dead,
                      s.paused_until, s.disabled_at
               FROM names LEFT JOIN q ON q.sink = names.name
               LEFT JOIN sinks s ON s.name = names.name""",
            (json.dumps(list(sinks)),),
        )


def _open_error(path: Path, e: OSError | sqlite3.Error) -> StoreError:
    reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
    return StoreError(f"cannot open database {str(path)!r}: {reason}")


def query_readonly(
    path: Path, sql: str, params: Sequence[Any] = ()
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run SQL against the database opened read-only: a write statement fails, changing nothing."""
    if not path.exists():
        raise StoreError(f"no database at {str(path)!r} (run `syncd sync` first)")
    uri = f"{path.resolve().as_uri()}?mode=ro"
    conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        cur = conn.execute(sql, params)
        cols = [c[0] for c in cur.description] if cur.description else []
        return cols, cur.fetchall()
    except sqlite3.Error as e:
        raise StoreError(f"query failed: {e}") from None
    finally:
        conn.close()


__all__ = [
    "ChangeKind",
    "ChangesOutcome",
    "CrawlOutcome",
    "FeedState",
    "PageState",
    "Store",
    "query_readonly",
]
