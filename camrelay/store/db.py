"""Async connections to the store: SQLAlchemy Core on asyncio, without the ORM.

SQLAlchemy's asyncio extension (``sqlalchemy.ext.asyncio``) imports its ORM session
classes with it: about 6 MB of every camrelay process, which never maps an object.  This
module is the part of the extension camrelay uses: an engine whose ``connect()`` and
``begin()`` yield a connection whose ``execute()`` returns SQLAlchemy's own buffered
``CursorResult``.  It crosses into the synchronous Core through the same greenlet bridge
as the extension (``sqlalchemy.util.greenlet_spawn``), so the async drivers (aiosqlite,
asyncpg), the pool and its events behave exactly as they do under it.

Only async drivers are accepted (``sqlite+aiosqlite``, ``postgresql+asyncpg``): a
synchronous driver would block the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from functools import partial
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar, TypeVarTuple, overload

from sqlalchemy import create_engine
from sqlalchemy.engine import Connection, CursorResult, Dialect, Engine
from sqlalchemy.sql.base import Executable
from sqlalchemy.util import greenlet_spawn

from camrelay.errors import ConfigError

if TYPE_CHECKING:
    from sqlalchemy.sql.selectable import TypedReturnsRows

T = TypeVar("T")
P = ParamSpec("P")
Ts = TypeVarTuple("Ts")


def create_async_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An engine for an async driver's URL; ``kwargs`` as for ``sqlalchemy.create_engine``."""
    engine = create_engine(url, **kwargs)
    if not engine.dialect.is_async:
        engine.dispose()
        raise ConfigError(f"database URL with driver {engine.dialect.driver!r}: camrelay "
                          "needs an async driver (sqlite+aiosqlite, postgresql+asyncpg)")
    return AsyncEngine(engine)


async def _to_completion(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to its end even if the caller is cancelled meanwhile (a connection must
    go back to its pool whole); the cancellation is raised afterwards."""
    task = asyncio.ensure_future(coro)
    cancelled: asyncio.CancelledError | None = None
    while True:
        try:
            result = await asyncio.shield(task)
        except asyncio.CancelledError as err:
            if task.done():
                raise
            cancelled = err
        else:
            break
    if cancelled is not None:
        raise cancelled
    return result


class AsyncEngine:
    __slots__ = ("sync_engine",)

    def __init__(self, sync_engine: Engine) -> None:
        self.sync_engine = sync_engine

    @property
    def dialect(self) -> Dialect:
        return self.sync_engine.dialect

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        """A connection from the pool, handed back when the block ends (also when the
        task is cancelled)."""
        conn = AsyncConnection(await greenlet_spawn(self.sync_engine.connect))
        try:
            yield conn
        finally:
            await _to_completion(conn.close())

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """A connection in a transaction: committed when the block ends, rolled back on
        any error."""
        async with self.connect() as conn, conn.begin():
            yield conn

    async def dispose(self) -> None:
        await greenlet_spawn(self.sync_engine.dispose)


class AsyncConnection:
    __slots__ = ("sync_connection",)

    def __init__(self, sync_connection: Connection) -> None:
        self.sync_connection = sync_connection

    @overload
    async def execute(self, statement: TypedReturnsRows[*Ts], parameters: Any = None
                      ) -> CursorResult[*Ts]: ...

    @overload
    async def execute(self, statement: Executable, parameters: Any = None
                      ) -> CursorResult[*tuple[Any, ...]]: ...

    async def execute(self, statement: Executable, parameters: Any = None
                      ) -> CursorResult[*tuple[Any, ...]]:
        """Execute ``statement``; the result is buffered (read it without awaiting)."""
        return await greenlet_spawn(self.sync_connection.execute, statement, parameters)

    async def run_sync(self, fn: Callable[Concatenate[Connection, P], T], *args: P.args,
                       **kwargs: P.kwargs) -> T:
        """``fn(sync_connection, ...)`` for synchronous Core APIs (DDL, the inspector)."""
        return await greenlet_spawn(partial(fn, self.sync_connection, *args, **kwargs))

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """A transaction as a block: committed at its end, rolled back on any error."""
        transaction = await greenlet_spawn(self.sync_connection.begin)
        transaction.__enter__()  # no I/O: marks the block as the transaction's owner
        try:
            yield self
        except BaseException as err:
            await greenlet_spawn(transaction.__exit__, type(err), err, err.__traceback__)
            raise
        await greenlet_spawn(transaction.__exit__, None, None, None)

    def in_transaction(self) -> bool:
        return self.sync_connection.in_transaction()

    async def commit(self) -> None:
        await greenlet_spawn(self.sync_connection.commit)

    async def rollback(self) -> None:
        await greenlet_spawn(self.sync_connection.rollback)

    async def close(self) -> None:
        await greenlet_spawn(self.sync_connection.close)
