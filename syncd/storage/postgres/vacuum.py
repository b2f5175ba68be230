"""`VACUUM (ANALYZE)` of syncd's tables on PostgreSQL, on demand (`syncd vacuum`).

Plain VACUUM takes no lock that reads or writes wait for (only DDL and other vacuums), so it is
safe beside running daemons: it makes the space of deleted rows reusable and refreshes the
planner's statistics after a prune. It seldom shrinks files; VACUUM FULL would, but it locks
each table for its whole rewrite, so syncd never runs it. Decides nothing about when.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import psycopg
from psycopg import sql

from syncd.errors import StoreError
from syncd.storage.postgres.db import Pg

if TYPE_CHECKING:  # operators' values: never imported by a crawl (see syncd.storage.reports)
    from syncd.storage.reports import VacuumReport

# syncd's tables are every table of the store's schema (the URL's search_path), read when the
# vacuum runs: a table a later migration adds is never left out.
_TABLES = (
    "SELECT c.relname AS name FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace"
    " WHERE s.nspname = current_schema() AND c.relkind = 'r' ORDER BY c.relname"
)

NOTE = (
    "PostgreSQL: VACUUM (ANALYZE) made deleted rows' space reusable and refreshed statistics"
    " beside any running daemon; files shrink only with VACUUM FULL, which syncd never runs"
    " (it locks each table)"
)


async def vacuum(pg: Pg) -> VacuumReport:
    from syncd.storage.reports import VacuumReport

    before = await _size(pg)
    tables = [r["name"] for r in await pg.rows(_TABLES)]
    try:
        # VACUUM cannot run inside a transaction block.
        async with pg.pool.connection() as conn:
            await conn.set_autocommit(True)
            try:
                for table in tables:
                    quoted = sql.Identifier(table)
                    await conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(quoted))
            finally:
                await conn.set_autocommit(False)
    except psycopg.Error as e:
        raise StoreError(f"database error in {pg.location}: {e}") from e
    return VacuumReport(before, await _size(pg), NOTE)


async def _size(pg: Pg) -> int:
    """Bytes of syncd's tables with their indexes and TOAST."""
    rows = await pg.rows(
        "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) AS n FROM pg_class c"
        " JOIN pg_namespace s ON s.oid = c.relnamespace"
        " WHERE s.nspname = current_schema() AND c.relkind = 'r'"
    )
    return int(rows[0]["n"])
