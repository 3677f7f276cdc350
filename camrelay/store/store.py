"""The store: one async SQLAlchemy engine, migrated at open, with the credential cipher.

SQLite (the embedded default) runs in WAL mode with foreign keys on and a busy
timeout; PostgreSQL is used by URL (``postgresql+asyncpg://``) for clusters.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.exc import SQLAlchemyError

from camrelay import memory
from camrelay.errors import CredentialKeyError, StoreError
from camrelay.redact import redact_text, strip_credentials
from camrelay.settings import Settings
from camrelay.store import schema
from camrelay.store.crypto import CANARY, CredentialCipher, load_or_create_key
from camrelay.store.db import AsyncConnection, AsyncEngine, create_async_engine
from camrelay.store.migrations import migrate
from camrelay.store.private import private_dir, private_sqlite, sqlite_file_of

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 10_000
# SQLite takes one writer at a time, and each aiosqlite connection is a thread with its
# own page cache: one connection stays open; up to four more serve a burst (a hall
# opening a wall of views at once, an audit export beside live traffic) and close when
# they are handed back.
SQLITE_POOL_SIZE = 1
SQLITE_MAX_OVERFLOW = 4
SQLITE_POOL_TIMEOUT = 30.0  # seconds a burst waits for a connection


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA cache_size=-512")
    cursor.close()


def make_engine(url: str) -> AsyncEngine:
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
                                     pool_size=SQLITE_POOL_SIZE,
                                     max_overflow=SQLITE_MAX_OVERFLOW,
                                     pool_timeout=SQLITE_POOL_TIMEOUT)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        # a burst's extra connections close when handed back: give their memory back
        event.listen(engine.sync_engine, "close", lambda *_: memory.trim_soon())
    else:
        engine = create_async_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)
    return engine


class Store:
    def __init__(self, engine: AsyncEngine, cipher: CredentialCipher) -> None:
        self.engine = engine
        self.cipher = cipher

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @classmethod
    async def open(cls, settings: Settings) -> Store:
        """Open (creating if need be), migrate and check the credential key."""
        url = settings.effective_database_url
        if url.startswith("sqlite"):
            private_dir(settings.data_dir)
            database = sqlite_file_of(url)
            if database is not None:
                private_sqlite(database)
        engine = make_engine(url)
        try:
            before, after = await migrate(engine)
        except (SQLAlchemyError, OSError) as err:
            await engine.dispose()
            orig = getattr(err, "orig", None)
            reason = redact_text(str(orig) if orig is not None else str(err))
            raise StoreError(
                f"cannot open the store at {strip_credentials(url)}: {type(err).__name__}: "
                f"{reason}") from None
        except BaseException:
            await engine.dispose()
            raise
        if before != after:
            log.info("store at %s: schema %s -> %s", strip_credentials(url), before, after)
        cipher = CredentialCipher(load_or_create_key(settings.credential_key, settings.data_dir))
        store = cls(engine, cipher)
        try:
            await store._check_key()
        except BaseException:
            await engine.dispose()
            raise
        return store

    async def _check_key(self) -> None:
        async with self.engine.begin() as conn:
            sealed = (
                await conn.execute(
                    select(schema.meta.c.value).where(schema.meta.c.key == "credential_canary")
                )
            ).scalar_one_or_none()
            if sealed is None:
                await conn.execute(
                    schema.meta.insert().values(key="credential_canary",
                                                value=self.cipher.seal(CANARY))
                )
            elif self.cipher.open(sealed) != CANARY:
                raise CredentialKeyError(
                    "the credential key cannot decrypt this store's camera credentials: the "
                    "store was sealed with another key (check the credential_key setting or "
                    "credential.key in the data directory)")

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """One transaction: committed when the block ends, rolled back on any error."""
        async with self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            yield conn

    @asynccontextmanager
    async def using(self, conn: AsyncConnection | None, *, write: bool = False
                    ) -> AsyncIterator[AsyncConnection]:
        """``conn`` when the caller is inside its own transaction; else a new connection
        (a transaction committed at the end with ``write``).  Never a second connection
        for one piece of work: with a small pool, a task holding one and waiting for
        another can wait for ever."""
        if conn is not None:
            yield conn
            return
        async with self.begin() if write else self.connect() as own:
            yield own

    async def close(self) -> None:
        await self.engine.dispose()
