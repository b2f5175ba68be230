"""`syncd store copy`: every row of one store into another, whichever backends they are on.

A backend offers its tables through `TableSource` (one read snapshot, rows streamed in batches in
key order) and `TableTarget` (one write transaction: lands whole or not at all). This module
plans and runs the copy: which tables and columns (those both schemas have at their latest
migration; what only the source has is named in the report, never copied silently), in which
order (parents before the tables whose foreign keys name them), with every key kept (events.seq,
delivery ids, feed ids), the key counters carried over (a seq is never handed out twice, even
after the copy), and a count check per table inside the destination's transaction, so a mismatch
leaves the destination as it was. Derived tables (the search index) are left to each backend,
which rebuilds its own. It opens nothing and knows no SQL: the composition root hands it the two
ends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from syncd.errors import StoreError

Row = tuple[Any, ...]
DEFAULT_BATCH = 1000


@dataclass(frozen=True)
class TableInfo:
    """A table as a copy sees it: its columns in schema order, the key that orders a batch read,
    the tables its foreign keys name, and the column a counter fills (a serial id, a seq)."""

    name: str
    columns: tuple[str, ...]
    key: tuple[str, ...]
    parents: frozenset[str] = frozenset()
    counter: str | None = None


class TableSource(Protocol):
    """A store read for copying, in one snapshot, changing nothing."""

    @property
    def location(self) -> str: ...
    async def close(self) -> None: ...
    async def tables(self) -> dict[str, TableInfo]:
        """The store's own tables (not its migrations' bookkeeping, not derived indexes)."""
        ...

    async def count(self, table: str) -> int: ...
    def rows(
        self, table: TableInfo, columns: Sequence[str], batch: int
    ) -> AsyncIterator[list[Row]]:
        """The rows in key order, `batch` at a time."""
        ...

    async def counters(self) -> dict[str, int]:
        """Per table with a counter, the highest value it has handed out (which may be above the
        largest value still in the table: a deleted or rolled-back row's value is not reused)."""
        ...


class TableTarget(Protocol):
    """A store written by a copy, all in one transaction (`transaction()`)."""

    @property
    def location(self) -> str: ...
    async def close(self) -> None: ...
    async def tables(self) -> dict[str, TableInfo]: ...
    def transaction(self) -> AbstractAsyncContextManager[None]: ...
    async def count(self, table: str) -> int: ...
    async def clear(self, tables: Sequence[str]) -> None:
        """Delete every row of `tables`, in this order (children first), and their derived
        index."""
        ...

    async def insert(self, table: str, columns: Sequence[str], rows: Sequence[Row]) -> None: ...
    async def finish(self, counters: Mapping[str, int]) -> None:
        """After the rows: each counter at least the source's (and the largest value copied),
        and the derived tables (the search index) rebuilt from the copied rows."""
        ...


@dataclass(frozen=True)
class TableCopy:
    name: str
    columns: tuple[str, ...]
    source_rows: int
    target_rows: int


@dataclass
class CopyPlan:
    """What a copy does, decided from the two schemas alone."""

    tables: list[TableInfo]  # the target's tables to fill, parents first
    columns: dict[str, tuple[str, ...]]  # per table, the columns both sides have
    notes: list[str] = field(default_factory=list)  # what the source has that is not copied


@dataclass
class CopyReport:
    source: str
    target: str
    tables: list[TableCopy]
    counters: dict[str, int]
    notes: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "from": self.source,
            "to": self.target,
            "tables": [
                {"table": t.name, "source": t.source_rows, "destination": t.target_rows}
                for t in self.tables
            ],
            "counters": self.counters,
            "not_copied": self.notes,
        }


def plan_copy(source: Mapping[str, TableInfo], target: Mapping[str, TableInfo]) -> CopyPlan:
    """The tables both stores have, parents first (ties by name), each with the columns both
    have in the target's order; the source's tables and columns the target lacks as notes."""
    shared = sorted(source.keys() & target.keys())
    notes = [
        f"table {name} (the destination has no such table)"
        for name in sorted(source.keys() - target.keys())
    ]
    columns: dict[str, tuple[str, ...]] = {}
    for name in shared:
        have = set(source[name].columns)
        columns[name] = tuple(c for c in target[name].columns if c in have)
        notes += [
            f"column {name}.{c} (the destination has no such column)"
            for c in source[name].columns
            if c not in target[name].columns
        ]
        missing_key = [c for c in target[name].key if c not in have]
        if missing_key:
            raise StoreError(
                f"cannot copy table {name}: the source lacks its key column {missing_key[0]}"
            )
    return CopyPlan([target[n] for n in parents_first(target, shared)], columns, notes)


def parents_first(tables: Mapping[str, TableInfo], names: Sequence[str]) -> list[str]:
    """`names` ordered so that each table comes after the tables its foreign keys name (a
    reference to itself or to a table not copied does not count); ties by name."""
    wanted = set(names)
    waiting = {n: set(tables[n].parents) & wanted - {n} for n in names}
    order: list[str] = []
    while waiting:
        ready = sorted(n for n, deps in waiting.items() if not deps)
        if not ready:
            raise StoreError(f"cannot order tables with circular foreign keys: {sorted(waiting)}")
        for n in ready:
            del waiting[n]
            order.append(n)
        for deps in waiting.values():
            deps.difference_update(ready)
    return order


async def copy_store(
    source: TableSource, target: TableTarget, *, replace: bool = False, batch: int = DEFAULT_BATCH
) -> CopyReport:
    """Copy every shared table of `source` into `target` in one target transaction; a StoreError
    (changing nothing in the target) if the target holds rows and `replace` is not set, or if a
    table's row count differs after the copy."""
    plan = plan_copy(await source.tables(), await target.tables())
    counters = await source.counters()
    copied: list[TableCopy] = []
    async with target.transaction():
        held = await target.tables()
        occupied = [(n, held_rows) for n in sorted(held) if (held_rows := await target.count(n))]
        if occupied and not replace:
            name, held_rows = occupied[0]
            raise StoreError(
                f"destination {target.location} is not empty ({held_rows} rows in {name});"
                " pass --replace to delete what it holds first"
            )
        if occupied:
            await target.clear(parents_first(held, sorted(held))[::-1])
        for table in plan.tables:
            columns = plan.columns[table.name]
            async for rows in source.rows(table, columns, batch):
                await target.insert(table.name, columns, rows)
        await target.finish({t: n for t, n in counters.items() if t in plan.columns})
        for table in plan.tables:
            copied.append(
                TableCopy(
                    table.name,
                    plan.columns[table.name],
                    await source.count(table.name),
                    await target.count(table.name),
                )
            )
        wrong = [t for t in copied if t.source_rows != t.target_rows]
        if wrong:
            t = wrong[0]
            raise StoreError(
                f"count check failed for table {t.name}: {t.source_rows} rows in"
                f" {source.location}, {t.target_rows} in {target.location}; nothing was copied"
            )
    return CopyReport(source.location, target.location, copied, counters, plan.notes)
