"""A scratch PostgreSQL schema per test, on the database `SYNCD_TEST_POSTGRES_URL` names
(default postgresql://127.0.0.1:5432/test): the yielded URL's connections use only that schema,
which is dropped afterwards, so parallel suites never see each other's tables. Where no server
answers, the test is skipped with one line naming what is missing."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
import pytest

from syncd.storage import Store
from syncd.storage.postgres.store import PostgresStore
from syncd.storage.sqlite import SqliteStore

DEFAULT_URL = "postgresql://127.0.0.1:5432/test"


def postgres_url() -> str:
    return os.environ.get("SYNCD_TEST_POSTGRES_URL") or DEFAULT_URL


def with_schema(url: str, schema: str) -> str:
    """`url` whose connections put `schema` first (and only) on their search path."""
    parts = urlsplit(url)
    option = "options=" + quote(f"-csearch_path={schema}")
    query = f"{parts.query}&{option}" if parts.query else option
    return urlunsplit(parts._replace(query=query))


@asynccontextmanager
async def scratch_schema() -> AsyncIterator[str]:
    base = postgres_url()
    try:
        admin = await psycopg.AsyncConnection.connect(base, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        pytest.skip(f"PostgreSQL not reachable at {base} (set SYNCD_TEST_POSTGRES_URL): {reason}")
    schema = f"syncd_test_{uuid.uuid4().hex[:12]}"
    await admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield with_schema(base, schema)
    finally:
        await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await admin.close()


@asynccontextmanager
async def backend_store(kind: str, tmp_path: Path) -> AsyncIterator[Store]:
    """A fresh store of `kind` ("sqlite": a file under `tmp_path`; "postgres": a scratch
    schema), closed afterwards: for tests that run on both backends."""
    if kind == "sqlite":
        store: Store = SqliteStore.open(tmp_path / "syncd.db")
        try:
            yield store
        finally:
            await store.close()
        return
    async with scratch_schema() as url:
        store = await PostgresStore.open(url)
        try:
            yield store
        finally:
            await store.close()
