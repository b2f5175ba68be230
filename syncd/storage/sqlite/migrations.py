"""The store's schema, as an ordered list of sqlite-utils migrations.

Users query this database directly, so the schema is part of the API: add migrations, never edit an
applied one. The README's "Database schema" section documents what these create.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from syncd.storage.envelopes import VERSION_FIELDS, leave_out
from syncd.storage.sqlite import search

if TYPE_CHECKING:
    from sqlite_utils import Database

Migration = Callable[["Database"], None]
MIGRATION_SET = "syncd"


class LazyMigrations:
    """sqlite-utils' `Migrations`, declared the same way (`@migrations()`), but sqlite-utils is
    imported only when something is pending: every run opens the store, and a store that is up
    to date (nearly every run) is checked with one query instead of ~50 ms of imports."""

    def __init__(self) -> None:
        self._declared: list[tuple[str, Migration]] = []

    def __call__(self, *, name: str | None = None) -> Callable[[Migration], Migration]:
        def declare(fn: Migration) -> Migration:
            self._declared.append((name or fn.__name__, fn))
            return fn

        return declare

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self._declared]

    def pending(self, conn: sqlite3.Connection) -> list[str]:
        """The names not yet applied to the database, in declaration order (read-only)."""
        try:
            rows = conn.execute(
                "SELECT name FROM _sqlite_migrations WHERE migration_set = ?", (MIGRATION_SET,)
            ).fetchall()
        except sqlite3.OperationalError as e:
            if "no such table" not in str(e):
                raise
            rows = []
        applied = {name for (name,) in rows}
        return [name for name in self.names if name not in applied]

    def apply(self, conn: sqlite3.Connection, *, stop_before: str | None = None) -> None:
        """Apply what is pending, through sqlite-utils (each migration with its record in one
        transaction); `stop_before` (tests of a migration) leaves that one and later ones."""
        if not self.pending(conn):
            return
        from sqlite_utils import Database
        from sqlite_utils.migrations import Migrations

        real = Migrations(MIGRATION_SET)
        for name, fn in self._declared:
            real(name=name)(fn)
        real.apply(Database(conn), stop_before=stop_before)


migrations = LazyMigrations()


@migrations()
def m001_initial(db: Database) -> None:
    feeds: Any = db["feeds"]
    feeds.create(
        {
            "id": int,
            "name": str,
            "url": str,
            "title": str,
            "created_at": str,
            "first_synced_at": str,  # NULL until a first crawl completes: its events are "initial"
            "last_fetch_at": str,
            "last_outcome": str,  # ok | not_modified | error | gone | throttled
            "last_error": str,
            "consecutive_errors": int,
            "next_due_at": str,
            "last_full_sync_at": str,
            "retry_after_until": str,
            "gone_at": str,
        },
        pk="id",
        not_null={"name", "url", "created_at"},
        defaults={"consecutive_errors": 0},
    )
    feeds.create_index(["name"], unique=True)

    pages: Any = db["pages"]
    pages.create(
        {
            "feed_id": int,
            "url": str,
            "etag": str,
            "last_modified": str,
            "body_hash": str,
            "next_url": str,
            "entry_count": int,
            "fetched_at": str,
        },
        pk=("feed_id", "url"),
        foreign_keys=[("feed_id", "feeds", "id")],
    )

    entries: Any = db["entries"]
    entries.create(
        {
            "feed_id": int,
            "entry_id": str,
            "id_source": str,
            "title": str,
            "link": str,
            "published": str,
            "updated": str,
            "authors": str,  # JSON array of {name, email, uri}
            "categories": str,  # JSON array of strings
            "summary": str,
            "content": str,
            "links": str,  # JSON array of {href, rel, type, title, length}
            "base_url": str,
            "content_hash": str,
            "hash_only_updates": int,
            "first_seen": str,
            "last_seen": str,
            "deleted_at": str,
        },
        pk=("feed_id", "entry_id"),
        foreign_keys=[("feed_id", "feeds", "id")],
        defaults={"hash_only_updates": 0},
    )
    entries.create_index(["feed_id", "published"])
    entries.enable_fts(["title", "summary", "content"], create_triggers=True)

    versions: Any = db["entry_versions"]
    versions.create(
        {
            "id": int,
            "feed_id": int,
            "entry_id": str,
            "event_id": str,
            "recorded_at": str,
            "title": str,
            "link": str,
            "published": str,
            "updated": str,
            "authors": str,
            "categories": str,
            "summary": str,
            "content": str,
            "content_hash": str,
        },
        pk="id",
        foreign_keys=[("feed_id", "feeds", "id")],
    )
    versions.create_index(["feed_id", "entry_id"])

    # seq is the rowid with AUTOINCREMENT so it is never reused, even after deletes.
    db.execute(
        """
        CREATE TABLE events (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            type TEXT NOT NULL,
            feed_id INTEGER NOT NULL REFERENCES feeds(id),
            entry_id TEXT NOT NULL,
            created_at TEXT NOT NULL,
            initial INTEGER NOT NULL DEFAULT 0,
            payload TEXT NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX idx_events_feed_entry ON events(feed_id, entry_id)")

    deliveries: Any = db["deliveries"]
    deliveries.create(
        {
            "id": int,
            "event_seq": int,
            "sink": str,
            "state": str,  # pending | failed | delivered | dead
            "attempts": int,
            "created_at": str,
            "next_attempt_at": str,
            "last_attempt_at": str,
            "last_status": int,
            "last_error": str,
            "delivered_at": str,
        },
        pk="id",
        foreign_keys=[("event_seq", "events", "seq")],
        not_null={"event_seq", "sink", "state"},
        defaults={"attempts": 0},
    )
    deliveries.create_index(["event_seq", "sink"], unique=True)
    deliveries.create_index(["sink", "state", "next_attempt_at"])

    attempts: Any = db["delivery_attempts"]
    attempts.create(
        {
            "id": int,
            "delivery_id": int,
            "attempted_at": str,
            "status": int,
            "latency_ms": float,
            "error": str,
        },
        pk="id",
        foreign_keys=[("delivery_id", "deliveries", "id")],
    )
    attempts.create_index(["delivery_id"])

    sinks: Any = db["sinks"]
    sinks.create(
        {"name": str, "disabled_at": str, "disabled_reason": str},
        pk="name",
    )


@migrations()
def m002_deletion_evidence(db: Database) -> None:
    """What deletion inference needs (DESIGN §4.7): which ids each page listed when last parsed
    (so 304 pages still count as seen), RFC 5005 archive pages, and per-entry absence counts."""
    db.execute("ALTER TABLE pages ADD COLUMN entry_ids TEXT")  # JSON array
    db.execute("ALTER TABLE pages ADD COLUMN archive INTEGER NOT NULL DEFAULT 0")
    db.execute("ALTER TABLE pages ADD COLUMN prev_archive_url TEXT")
    db.execute("ALTER TABLE entries ADD COLUMN missing_crawls INTEGER NOT NULL DEFAULT 0")
    db.execute("ALTER TABLE entries ADD COLUMN revision INTEGER NOT NULL DEFAULT 0")
    db.execute("ALTER TABLE entries ADD COLUMN deleted_reason TEXT")


@migrations()
def m100_delivery_engine(db: Database) -> None:
    """Leases, the queue index, the attempt result, persisted sink health, the delivery_log view."""
    # A claimed delivery is leased, not marked: if its process dies the lease runs out.
    db.execute("ALTER TABLE deliveries ADD COLUMN leased_until TEXT")
    # The dispatcher walks a sink's queue in seq order; this index holds only queued rows, so a
    # large delivered history costs nothing. The WHERE must match the queries' text exactly.
    db.execute(
        "CREATE INDEX idx_deliveries_queue ON deliveries(sink, event_seq)"
        " WHERE state IN ('pending', 'failed')"
    )
    # The delivery's state right after the attempt: delivered | failed | dead.
    db.execute("ALTER TABLE delivery_attempts ADD COLUMN result TEXT")
    for column in (
        "config_hash TEXT",  # the sink's config when a 410 disabled it; a new config re-enables
        "paused_until TEXT",  # backing off (receiver unavailable) until then
        "pause_level INTEGER NOT NULL DEFAULT 0",  # consecutive pauses since the last success
        "pause_reason TEXT",
        "resume_requested_at TEXT",  # set by operator commands; a running daemon watches it
    ):
        db.execute(f"ALTER TABLE sinks ADD COLUMN {column}")
    db.execute(
        """
        CREATE VIEW delivery_log AS
        SELECT a.id, a.attempted_at, d.sink, a.delivery_id, d.event_seq, e.id AS event_id,
               e.type AS event_type, a.result, a.status, a.latency_ms, a.error
        FROM delivery_attempts a
        JOIN deliveries d ON d.id = a.delivery_id
        JOIN events e ON e.seq = d.event_seq
        """
    )


@migrations()
def m003_fts_reindex_only_changed_text(db: Database) -> None:
    """Reindex an entry's full-text row only when its text changed. sqlite-utils' trigger fires
    on every UPDATE, and each crawl touches every listed entry (last_seen): re-tokenising the
    whole content of 25 entries per page cost more than the rest of the page's commit."""
    db.execute("DROP TRIGGER IF EXISTS entries_au")
    db.execute(
        """
        CREATE TRIGGER entries_au AFTER UPDATE OF title, summary, content ON entries
        WHEN old.title IS NOT new.title OR old.summary IS NOT new.summary
          OR old.content IS NOT new.content
        BEGIN
          INSERT INTO entries_fts (entries_fts, rowid, title, summary, content)
            VALUES ('delete', old.rowid, old.title, old.summary, old.content);
          INSERT INTO entries_fts (rowid, title, summary, content)
            VALUES (new.rowid, new.title, new.summary, new.content);
        END
        """
    )


@migrations()
def m004_crawl_incomplete(db: Database) -> None:
    """Set with every committed page, cleared when a crawl completes: a crawl that committed pages
    and then died or failed makes the next poll a full one, since those pages answer 304."""
    db.execute("ALTER TABLE feeds ADD COLUMN crawl_incomplete INTEGER NOT NULL DEFAULT 0")


@migrations()
def m005_feed_moves(db: Database) -> None:
    """A feed that moved for good (301/308, stable, same feed) is fetched at its new URL
    (`adopted_url`); `moved_to`/`moved_seen` track a move until it is stable (DESIGN §4.10)."""
    db.execute("ALTER TABLE feeds ADD COLUMN adopted_url TEXT")
    db.execute("ALTER TABLE feeds ADD COLUMN moved_to TEXT")
    db.execute("ALTER TABLE feeds ADD COLUMN moved_seen INTEGER NOT NULL DEFAULT 0")


@migrations()
def m006_freshness(db: Database) -> None:
    """Freshness (issue 9). On feeds: where the feed answers the GData changes query
    (`changes_base`), when a refused one may be asked again and why it was turned off, an
    instant a changes query must resume from (`changes_since`, set only while one is
    unfinished), the totalResults and page-1 shortfall last stated (a drop asks for a full crawl,
    `full_crawl_reason`), and why the next poll is when it is (`next_due_reason`). On pages:
    `partial` marks changes-query pages (never evidence of absence), and the totalResults each
    page stated, so a crawl through 304 pages can still check its count."""
    for column in (
        "changes_base TEXT",
        "changes_off_until TEXT",
        "changes_error TEXT",
        "changes_since TEXT",
        "total_results INTEGER",
        "page1_shortfall INTEGER",
        "full_crawl_reason TEXT",
        "next_due_reason TEXT",
    ):
        db.execute(f"ALTER TABLE feeds ADD COLUMN {column}")
    db.execute("ALTER TABLE pages ADD COLUMN partial INTEGER NOT NULL DEFAULT 0")
    db.execute("ALTER TABLE pages ADD COLUMN total_results INTEGER")


@migrations()
def m007_publisher_cadence(db: Database) -> None:
    """What a feed says of its own cadence (RSS `<ttl>`, `sy:updatePeriod`/`updateFrequency`),
    kept from its last parsed first page: 304 polls do not parse, yet the floor still holds."""
    db.execute("ALTER TABLE feeds ADD COLUMN publisher_interval_s REAL")
    db.execute("ALTER TABLE feeds ADD COLUMN publisher_interval_why TEXT")


@migrations()
def m008_search_text_and_views(db: Database) -> None:
    """Search text, not markup (issue 11): the sqlite-utils index of raw HTML (`entries_fts`,
    whose rowids VACUUM may renumber) gives way to `entries_search`, holding the stripped text of
    live entries only, keyed by `entries_search_keys`; the store maintains it in its write
    transactions (syncd.search). Views: `live_entries` (not deleted), `changes` (events with
    their entries, newest first)."""
    for trigger in ("entries_ai", "entries_ad", "entries_au"):
        db.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    db.execute("DROP TABLE IF EXISTS entries_fts")
    for statement in search.CREATE_SQL:
        db.execute(statement)
    search.rebuild(db.conn)
    db.execute(
        """
        CREATE VIEW live_entries AS
        SELECT f.name AS feed, e.*
        FROM entries e JOIN feeds f ON f.id = e.feed_id
        WHERE e.deleted_at IS NULL
        """
    )
    db.execute(
        """
        CREATE VIEW changes AS
        SELECT ev.seq, ev.id AS event_id, ev.type, ev.created_at, ev.initial,
               f.name AS feed, ev.entry_id, e.title, e.link, e.published, e.updated,
               e.deleted_at, e.deleted_reason
        FROM events ev
        JOIN feeds f ON f.id = ev.feed_id
        LEFT JOIN entries e ON e.feed_id = ev.feed_id AND e.entry_id = ev.entry_id
        ORDER BY ev.seq DESC
        """
    )


@migrations()
def m009_prune_state(db: Database) -> None:
    """Retention (issue 11): the newest event seq `syncd prune` deleted (events go as a prefix of
    seq), so a pull cursor behind it is told to restart there instead of skipping silently."""
    db.execute(
        "CREATE TABLE prune_state (id INTEGER PRIMARY KEY CHECK (id = 1),"
        " events_pruned_through INTEGER NOT NULL DEFAULT 0)"
    )


@migrations()
def m010_websub_subscriptions(db: Database) -> None:
    """WebSub subscriptions (issue 10), one row per callback: `id` is the unguessable path segment
    of the callback URL; `state` is subscribing, active, denied, failed, unsubscribing or
    unsubscribed; `secret` signs the hub's pushes (NULL: none was sent)."""
    db.execute(
        """
        CREATE TABLE websub_subscriptions (
            id TEXT PRIMARY KEY,
            feed_id INTEGER NOT NULL REFERENCES feeds(id),
            hub TEXT NOT NULL,
            topic TEXT NOT NULL,
            secret TEXT,
            state TEXT NOT NULL,
            reason TEXT,
            lease_seconds INTEGER,
            requested_at TEXT NOT NULL,
            expires_at TEXT,
            last_push_at TEXT,
            pushes INTEGER NOT NULL DEFAULT 0,
            rejected INTEGER NOT NULL DEFAULT 0
        )
        """
    )
    db.execute("CREATE INDEX websub_subscriptions_feed ON websub_subscriptions(feed_id)")


@migrations()
def m011_due_index(db: Database) -> None:
    """The daemon asks every second which feeds are due: an index that answers it without
    reading every feed (a million feeds are a million rows)."""
    db.execute("CREATE INDEX feeds_due ON feeds(next_due_at) WHERE gone_at IS NULL")


@migrations()
def m012_live_entries_search_id(db: Database) -> None:
    """`live_entries` gains `search_id`, the entry's row in `entries_search`, so a tool that
    searches a table through an FTS table's rowid (Datasette's `fts_pk`) can search live
    entries; every other column is as before."""
    db.execute("DROP VIEW live_entries")
    db.execute(
        """
        CREATE VIEW live_entries AS
        SELECT f.name AS feed, e.*, k.id AS search_id
        FROM entries e JOIN feeds f ON f.id = e.feed_id
        LEFT JOIN entries_search_keys k ON k.feed_id = e.feed_id AND k.entry_id = e.entry_id
        WHERE e.deleted_at IS NULL
        """
    )


@migrations()
def m013_websub_leases(db: Database) -> None:
    """WebSub leases and the safety net (issue 10): the callback URL sent to the hub (so an
    unsubscription reaches the same one after `public_url` changed), when the lease was verified
    and is to be renewed, the back-off of requests not verified, and since when (and why) the
    feed's pushes are not trusted. A subscribe request awaiting verification is `subscribing`
    (first) or `renewing` (an active lease being renewed)."""
    for column in (
        "callback TEXT",
        "verified_at TEXT",
        "renew_at TEXT",
        "retry_at TEXT",
        "attempts INTEGER NOT NULL DEFAULT 0",
        "unreliable_at TEXT",
        "unreliable_reason TEXT",
    ):
        db.execute(f"ALTER TABLE websub_subscriptions ADD COLUMN {column}")
    db.execute(
        "CREATE INDEX websub_subscriptions_due ON websub_subscriptions(state, retry_at, renew_at)"
    )


@migrations()
def m014_content_once_per_version(db: Database) -> None:
    """Content stored once per version (issue 11): an event names the version its entry is
    (`events.version_id`, kept by a foreign key) and stores its envelope with `"entry":null`;
    readers splice the version back in (syncd.storage.envelopes). Versions gain `base_url`,
    the one field of an envelope's entry they lacked. Existing events are converted where a
    version reproduces their entry byte for byte, and keep their whole envelope otherwise."""
    db.execute("ALTER TABLE entry_versions ADD COLUMN base_url TEXT")
    db.execute("ALTER TABLE events ADD COLUMN version_id INTEGER REFERENCES entry_versions(id)")
    db.execute("CREATE INDEX idx_events_version ON events(version_id)")
    # An entry's base_url as each version's event sent it; the newest version of an entry
    # without one takes the entry's (what a later entry.deleted will show).
    db.execute(
        """UPDATE entry_versions SET base_url = (SELECT json_extract(ev.payload,
             '$.data.entry.base_url') FROM events ev WHERE ev.id = entry_versions.event_id)
           WHERE event_id IS NOT NULL"""
    )
    db.execute(
        """UPDATE entry_versions SET base_url = (SELECT e.base_url FROM entries e
             WHERE e.feed_id = entry_versions.feed_id AND e.entry_id = entry_versions.entry_id)
           WHERE base_url IS NULL AND id IN (SELECT MAX(id) FROM entry_versions
             GROUP BY feed_id, entry_id)"""
    )
    # Only while converting: finds an event's own version without reading its entry's others.
    db.execute("CREATE INDEX m014_versions_event ON entry_versions(event_id)")
    _name_versions(db.conn)
    db.execute("DROP INDEX m014_versions_event")


def _name_versions(conn: sqlite3.Connection) -> None:
    """Leave each stored event's entry to a version that reproduces it byte for byte, 500
    events at a time: its own version (written from the same change), or for an event without
    one (a deletion, or its version pruned) the entry's newest that does. Every version is read
    lazily, never all of an entry's at once: an entry edited n times would otherwise cost n
    reads of n contents (an hour and more for thousands of edits, the daemon waiting)."""
    fields = ", ".join(VERSION_FIELDS)
    last = 0
    while True:
        batch = conn.execute(
            "SELECT seq, id, feed_id, entry_id, payload FROM events WHERE seq > ?"
            " AND version_id IS NULL ORDER BY seq LIMIT 500",
            (last,),
        ).fetchall()
        if not batch:
            return
        for seq, event_id, feed_id, entry_id, payload in batch:
            own = conn.execute(
                f"SELECT id, {fields} FROM entry_versions INDEXED BY m014_versions_event"
                " WHERE event_id = ? AND feed_id = ? AND entry_id = ? ORDER BY id DESC",
                (event_id, feed_id, entry_id),
            )
            first = own.fetchone()
            candidates = (
                itertools.chain([first], own)
                if first is not None
                else conn.execute(
                    f"SELECT id, {fields} FROM entry_versions WHERE feed_id = ? AND entry_id = ?"
                    " ORDER BY id DESC",
                    (feed_id, entry_id),
                )
            )
            for version_id, *columns in candidates:
                short = leave_out(payload, dict(zip(VERSION_FIELDS, columns, strict=True)))
                if short is not None:
                    conn.execute(
                        "UPDATE events SET payload = ?, version_id = ? WHERE seq = ?",
                        (short, version_id, seq),
                    )
                    break
        last = batch[-1][0]


@migrations()
def m015_worker_leases(db: Database) -> None:
    """Many workers (issue 12): a feed is crawled under a lease (`lease_owner` until
    `lease_until`; `lease_token` grows with each acquisition and fences the crawl's writes), a
    delivery's lease names its worker (`leased_by`), `workers` says which workers are alive, and
    `host_slots` paces requests per host across workers (epoch seconds of the store's clock)."""
    for column in (
        "lease_owner TEXT",
        "lease_until TEXT",
        "lease_token INTEGER NOT NULL DEFAULT 0",
    ):
        db.execute(f"ALTER TABLE feeds ADD COLUMN {column}")
    db.execute("CREATE INDEX feeds_leased ON feeds(lease_owner) WHERE lease_owner IS NOT NULL")
    db.execute("ALTER TABLE deliveries ADD COLUMN leased_by TEXT")
    db.execute(
        "CREATE TABLE workers (id TEXT PRIMARY KEY, started_at TEXT NOT NULL,"
        " seen_at TEXT NOT NULL, expires_at TEXT NOT NULL)"
    )
    db.execute("CREATE TABLE host_slots (host TEXT PRIMARY KEY, next_at REAL NOT NULL)")


@migrations()
def m016_failing_feeds_index(db: Database) -> None:
    """The daemon's status line counts the feeds failing now every 10 s: a partial index that
    holds only those (few) feeds, where a scan of a million feed rows took a second."""
    db.execute(
        "CREATE INDEX feeds_failing ON feeds(consecutive_errors)"
        " WHERE consecutive_errors > 0 AND gone_at IS NULL"
    )


@migrations()
def m017_search_pending(db: Database) -> None:
    """The search index leaves the page's write transaction (issue 7): a page queues the entries
    whose index row is stale in `search_pending`, and the indexer (syncd.indexer) catches up
    later, a batch per transaction. The index as it stands is up to date: nothing is queued."""
    db.execute(search.PENDING_SQL)


@migrations()
def m018_entry_parse_keys(db: Database) -> None:
    """Each entry keeps the key of the element it was read from (parse.FastPage): a changed
    page looks its entries' keys up and reads only the entries the store does not know."""
    db.execute("ALTER TABLE entries ADD COLUMN parse_key TEXT")
    db.execute("CREATE INDEX entries_parse_key ON entries(feed_id, parse_key)")


@migrations()
def m019_delivery_state_indexes(db: Database) -> None:
    """Recording a delivery no longer moves it in an index of its state (issue 7): the index on
    (sink, state, next_attempt_at) took about a third of a record's cost. A sink's rows are found
    by `idx_deliveries_sink` (sink only, untouched by a state change), its dead ones by a partial
    index that holds only those; the queue keeps `idx_deliveries_queue`."""
    db.execute("DROP INDEX IF EXISTS idx_deliveries_sink_state_next_attempt_at")
    db.execute("CREATE INDEX idx_deliveries_sink ON deliveries(sink)")
    db.execute("CREATE INDEX idx_deliveries_dead ON deliveries(sink) WHERE state = 'dead'")
