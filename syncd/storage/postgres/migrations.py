"""The PostgreSQL schema, as one ordered list of migrations (name, statements), applied once each
and recorded in `syncd_migrations`. The same tables, columns and views as the SQLite schema
(README, "Database schema"), so queries and tools read both alike: instants are ISO-8601 UTC text
(`TEXT COLLATE "C"`: compared byte-wise, as a locale's collation would skip punctuation), JSON
columns are text. Full-text search is a weighted `tsvector`
(title A, summary B, content C) instead of FTS5. Add migrations, never edit an applied one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

# Serialises migrations between processes starting at once on one database.
MIGRATION_LOCK = 0x73796E63  # "sync"

M001_INITIAL = (
    # Instants are ISO-8601 text: they compare correctly only byte-wise (COLLATE "C").
    """CREATE TABLE feeds (
        id BIGSERIAL PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        url TEXT NOT NULL,
        title TEXT,
        created_at TEXT COLLATE "C" NOT NULL,
        first_synced_at TEXT COLLATE "C",
        last_fetch_at TEXT COLLATE "C",
        last_outcome TEXT,
        last_error TEXT,
        consecutive_errors INTEGER NOT NULL DEFAULT 0,
        next_due_at TEXT COLLATE "C",
        last_full_sync_at TEXT COLLATE "C",
        retry_after_until TEXT COLLATE "C",
        gone_at TEXT COLLATE "C",
        crawl_incomplete INTEGER NOT NULL DEFAULT 0,
        adopted_url TEXT,
        moved_to TEXT,
        moved_seen INTEGER NOT NULL DEFAULT 0,
        changes_base TEXT,
        changes_off_until TEXT COLLATE "C",
        changes_error TEXT,
        changes_since TEXT COLLATE "C",
        total_results INTEGER,
        page1_shortfall INTEGER,
        full_crawl_reason TEXT,
        next_due_reason TEXT,
        publisher_interval_s DOUBLE PRECISION,
        publisher_interval_why TEXT
    )""",
    "CREATE INDEX feeds_due ON feeds (next_due_at NULLS FIRST) WHERE gone_at IS NULL",
    """CREATE TABLE pages (
        feed_id BIGINT NOT NULL REFERENCES feeds(id),
        url TEXT NOT NULL,
        etag TEXT,
        last_modified TEXT,
        body_hash TEXT,
        next_url TEXT,
        entry_count INTEGER,
        fetched_at TEXT COLLATE "C",
        entry_ids TEXT,
        archive INTEGER NOT NULL DEFAULT 0,
        prev_archive_url TEXT,
        partial INTEGER NOT NULL DEFAULT 0,
        total_results INTEGER,
        PRIMARY KEY (feed_id, url)
    )""",
    """CREATE TABLE entries (
        feed_id BIGINT NOT NULL REFERENCES feeds(id),
        entry_id TEXT NOT NULL,
        id_source TEXT,
        title TEXT,
        link TEXT,
        published TEXT COLLATE "C",
        updated TEXT COLLATE "C",
        authors TEXT,
        categories TEXT,
        summary TEXT,
        content TEXT,
        links TEXT,
        base_url TEXT,
        content_hash TEXT,
        hash_only_updates INTEGER NOT NULL DEFAULT 0,
        first_seen TEXT COLLATE "C",
        last_seen TEXT COLLATE "C",
        deleted_at TEXT COLLATE "C",
        missing_crawls INTEGER NOT NULL DEFAULT 0,
        revision INTEGER NOT NULL DEFAULT 0,
        deleted_reason TEXT,
        PRIMARY KEY (feed_id, entry_id)
    )""",
    "CREATE INDEX idx_entries_feed_published ON entries (feed_id, published)",
    """CREATE TABLE entry_versions (
        id BIGSERIAL PRIMARY KEY,
        feed_id BIGINT NOT NULL REFERENCES feeds(id),
        entry_id TEXT NOT NULL,
        event_id TEXT,
        recorded_at TEXT COLLATE "C",
        title TEXT,
        link TEXT,
        published TEXT COLLATE "C",
        updated TEXT COLLATE "C",
        authors TEXT,
        categories TEXT,
        summary TEXT,
        content TEXT,
        content_hash TEXT
    )""",
    "CREATE INDEX idx_entry_versions_entry ON entry_versions (feed_id, entry_id)",
    # A sequence never reuses a value, even after deletes (as SQLite's AUTOINCREMENT).
    """CREATE TABLE events (
        seq BIGSERIAL PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        type TEXT NOT NULL,
        feed_id BIGINT NOT NULL REFERENCES feeds(id),
        entry_id TEXT NOT NULL,
        created_at TEXT COLLATE "C" NOT NULL,
        initial INTEGER NOT NULL DEFAULT 0,
        payload TEXT NOT NULL
    )""",
    "CREATE INDEX idx_events_feed_entry ON events (feed_id, entry_id)",
    """CREATE TABLE deliveries (
        id BIGSERIAL PRIMARY KEY,
        event_seq BIGINT NOT NULL REFERENCES events(seq),
        sink TEXT NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        created_at TEXT COLLATE "C",
        next_attempt_at TEXT COLLATE "C",
        last_attempt_at TEXT COLLATE "C",
        last_status INTEGER,
        last_error TEXT,
        delivered_at TEXT COLLATE "C",
        leased_until TEXT COLLATE "C",
        UNIQUE (event_seq, sink)
    )""",
    "CREATE INDEX idx_deliveries_state ON deliveries (sink, state, next_attempt_at)",
    "CREATE INDEX idx_deliveries_queue ON deliveries (sink, event_seq)"
    " WHERE state IN ('pending', 'failed')",
    """CREATE TABLE delivery_attempts (
        id BIGSERIAL PRIMARY KEY,
        delivery_id BIGINT NOT NULL REFERENCES deliveries(id),
        attempted_at TEXT COLLATE "C",
        status INTEGER,
        latency_ms DOUBLE PRECISION,
        error TEXT,
        result TEXT
    )""",
    "CREATE INDEX idx_delivery_attempts_delivery ON delivery_attempts (delivery_id)",
    """CREATE TABLE sinks (
        name TEXT PRIMARY KEY,
        disabled_at TEXT COLLATE "C",
        disabled_reason TEXT,
        config_hash TEXT,
        paused_until TEXT COLLATE "C",
        pause_level INTEGER NOT NULL DEFAULT 0,
        pause_reason TEXT,
        resume_requested_at TEXT COLLATE "C"
    )""",
    """CREATE TABLE entries_search (
        feed_id BIGINT NOT NULL,
        entry_id TEXT NOT NULL,
        title TEXT,
        summary TEXT,
        content TEXT,
        document TSVECTOR NOT NULL,
        PRIMARY KEY (feed_id, entry_id)
    )""",
    "CREATE INDEX idx_entries_search ON entries_search USING GIN (document)",
    """CREATE TABLE prune_state (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        events_pruned_through BIGINT NOT NULL DEFAULT 0
    )""",
    """CREATE TABLE websub_subscriptions (
        id TEXT PRIMARY KEY,
        feed_id BIGINT NOT NULL REFERENCES feeds(id),
        hub TEXT NOT NULL,
        topic TEXT NOT NULL,
        secret TEXT,
        state TEXT NOT NULL,
        reason TEXT,
        lease_seconds INTEGER,
        requested_at TEXT COLLATE "C" NOT NULL,
        expires_at TEXT COLLATE "C",
        last_push_at TEXT COLLATE "C",
        pushes INTEGER NOT NULL DEFAULT 0,
        rejected INTEGER NOT NULL DEFAULT 0
    )""",
    "CREATE INDEX websub_subscriptions_feed ON websub_subscriptions (feed_id)",
    """CREATE VIEW delivery_log AS
        SELECT a.id, a.attempted_at, d.sink, a.delivery_id, d.event_seq, e.id AS event_id,
               e.type AS event_type, a.result, a.status, a.latency_ms, a.error
        FROM delivery_attempts a
        JOIN deliveries d ON d.id = a.delivery_id
        JOIN events e ON e.seq = d.event_seq""",
    """CREATE VIEW live_entries AS
        SELECT f.name AS feed, e.*
        FROM entries e JOIN feeds f ON f.id = e.feed_id
        WHERE e.deleted_at IS NULL""",
    """CREATE VIEW changes AS
        SELECT ev.seq, ev.id AS event_id, ev.type, ev.created_at, ev.initial,
               f.name AS feed, ev.entry_id, e.title, e.link, e.published, e.updated,
               e.deleted_at, e.deleted_reason
        FROM events ev
        JOIN feeds f ON f.id = ev.feed_id
        LEFT JOIN entries e ON e.feed_id = ev.feed_id AND e.entry_id = ev.entry_id
        ORDER BY ev.seq DESC""",
)

# WebSub leases and the safety net (issue 10), as SQLite's m013_websub_leases.
M002_WEBSUB_LEASES = (
    *(
        f"ALTER TABLE websub_subscriptions ADD COLUMN {column}"
        for column in (
            "callback TEXT",
            'verified_at TEXT COLLATE "C"',
            'renew_at TEXT COLLATE "C"',
            'retry_at TEXT COLLATE "C"',
            "attempts INTEGER NOT NULL DEFAULT 0",
            'unreliable_at TEXT COLLATE "C"',
            "unreliable_reason TEXT",
        )
    ),
    "CREATE INDEX websub_subscriptions_due ON websub_subscriptions (state, retry_at, renew_at)",
)

# Content stored once per version (issue 11), as SQLite's m014_content_once_per_version: an
# event names the version its entry is (`events.version_id`) and stores `"entry":null` in its
# envelope. Events stored before keep their whole envelope (version_id NULL) and read as before;
# versions take the base_url their event sent, so later deletions can name them.
M003_CONTENT_ONCE_PER_VERSION = (
    "ALTER TABLE entry_versions ADD COLUMN base_url TEXT",
    "ALTER TABLE events ADD COLUMN version_id BIGINT REFERENCES entry_versions(id)",
    "CREATE INDEX idx_events_version ON events (version_id)",
    """UPDATE entry_versions v SET base_url = ev.payload::json #>> '{data,entry,base_url}'
       FROM events ev WHERE ev.id = v.event_id""",
)

# Many workers (issue 12), as SQLite's m015_worker_leases: feed leases with a fencing token,
# the worker of a delivery's lease, live workers, and per-host request slots for the cluster.
M004_WORKER_LEASES = (
    "ALTER TABLE feeds ADD COLUMN lease_owner TEXT",
    'ALTER TABLE feeds ADD COLUMN lease_until TEXT COLLATE "C"',
    "ALTER TABLE feeds ADD COLUMN lease_token BIGINT NOT NULL DEFAULT 0",
    "CREATE INDEX feeds_leased ON feeds (lease_owner) WHERE lease_owner IS NOT NULL",
    "ALTER TABLE deliveries ADD COLUMN leased_by TEXT",
    """CREATE TABLE workers (
        id TEXT PRIMARY KEY,
        started_at TEXT COLLATE "C" NOT NULL,
        seen_at TEXT COLLATE "C" NOT NULL,
        expires_at TEXT COLLATE "C" NOT NULL
    )""",
    "CREATE TABLE host_slots (host TEXT PRIMARY KEY, next_at DOUBLE PRECISION NOT NULL)",
)

# The feeds failing now, for the daemon's status line, as SQLite's m016_failing_feeds_index.
M005_FAILING_FEEDS_INDEX = (
    "CREATE INDEX feeds_failing ON feeds (consecutive_errors)"
    " WHERE consecutive_errors > 0 AND gone_at IS NULL",
)

# The search index leaves the page's write transaction (issue 7), as SQLite's
# m017_search_pending: a page queues its stale entries here, the indexer catches up later.
M006_SEARCH_PENDING = (
    """CREATE TABLE search_pending (
        id BIGSERIAL PRIMARY KEY,
        feed_id BIGINT NOT NULL,
        entry_id TEXT NOT NULL,
        UNIQUE (feed_id, entry_id)
    )""",
)

# Each entry keeps the key of the element it was read from, as SQLite's m018_entry_parse_keys.
M007_ENTRY_PARSE_KEYS = (
    "ALTER TABLE entries ADD COLUMN parse_key TEXT",
    "CREATE INDEX entries_parse_key ON entries (feed_id, parse_key)",
)

# Recording a delivery moves it in no index of its state, as SQLite's m019_delivery_state_indexes.
M008_DELIVERY_STATE_INDEXES = (
    "DROP INDEX IF EXISTS idx_deliveries_state",
    "CREATE INDEX idx_deliveries_sink ON deliveries (sink)",
    "CREATE INDEX idx_deliveries_dead ON deliveries (sink) WHERE state = 'dead'",
)

MIGRATIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("m001_initial", M001_INITIAL),
    ("m002_websub_leases", M002_WEBSUB_LEASES),
    ("m003_content_once_per_version", M003_CONTENT_ONCE_PER_VERSION),
    ("m004_worker_leases", M004_WORKER_LEASES),
    ("m005_failing_feeds_index", M005_FAILING_FEEDS_INDEX),
    ("m006_search_pending", M006_SEARCH_PENDING),
    ("m007_entry_parse_keys", M007_ENTRY_PARSE_KEYS),
    ("m008_delivery_state_indexes", M008_DELIVERY_STATE_INDEXES),
)


async def _applied(conn: psycopg.AsyncConnection[Any]) -> set[str]:
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS syncd_migrations (name TEXT PRIMARY KEY,"
        " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
    )
    cur = await conn.execute("SELECT name FROM syncd_migrations")
    return {_first(r) for r in await cur.fetchall()}


def _first(row: Any) -> str:
    return str(row["name"] if isinstance(row, dict) else row[0])


async def apply_migrations(conn: psycopg.AsyncConnection[Any]) -> list[str]:
    """Apply what is pending, in order, in one transaction; the names applied."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        done = await _applied(conn)
        applied = []
        for name, statements in MIGRATIONS:
            if name in done:
                continue
            for statement in statements:
                await conn.execute(statement)
            await conn.execute("INSERT INTO syncd_migrations (name) VALUES (%s)", (name,))
            applied.append(name)
    return applied


async def pending_migrations(conn: psycopg.AsyncConnection[Any]) -> list[str]:
    """The names not applied yet (all of them on an empty database). Changes nothing."""
    async with conn.transaction():
        cur = await conn.execute("SELECT to_regclass('syncd_migrations') AS t")
        row = await cur.fetchone()
        exists = row is not None and (row["t"] if isinstance(row, dict) else row[0]) is not None
        done = await _applied(conn) if exists else set()
    return [name for name, _ in MIGRATIONS if name not in done]
