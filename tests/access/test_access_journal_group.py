"""Group commit of the access journal: concurrent writers share a transaction.

A wall applied at once opens sixteen views together; each *view.open* must be committed
before its media flows.  The events that arrive while a commit is in flight are written
together in the next one, chained in arrival order; each caller returns only after the
commit holding its event, an event's own failure is its caller's alone, and a caller
that gave up before its group was taken is never written.  Real SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import event, select

from camrelay.access.journal import Journal, JournalEvent, JournalUnavailable
from camrelay.store import schema
from tests.access.test_access_journal import journal

__all__ = ["journal"]

BEFORE = 6  # the journal fixture's events


def view_open(view_id: str) -> JournalEvent:
    return JournalEvent(kind="view.open", action="live", view_id=view_id, username="wall",
                        camera_id=1, result="allowed")


async def journalled_views(journal: Journal) -> list[str]:
    async with journal.engine.connect() as conn:
        rows = (await conn.execute(select(schema.journal.c.view_id).where(
            schema.journal.c.kind == "view.open").order_by(schema.journal.c.seq))).all()
    return [r.view_id for r in rows]


async def beats(journal: Journal) -> set[str]:
    async with journal.engine.connect() as conn:
        rows = (await conn.execute(select(schema.view_heartbeats.c.view_id))).all()
    return {r.view_id for r in rows}


async def test_sixteen_opens_at_once_share_commits_and_keep_the_chain(
        journal: Journal) -> None:
    commits: list[Any] = []

    def committed(conn: Any) -> None:
        commits.append(conn)

    event.listen(journal.engine.sync_engine, "commit", committed)
    try:
        ids = [f"wall{i:02d}" for i in range(16)]
        seqs = await asyncio.gather(*(journal.open_view(view_open(v), "node-a") for v in ids))
    finally:
        event.remove(journal.engine.sync_engine, "commit", committed)
    # chained in arrival order, every caller with its own event's number
    assert list(seqs) == list(range(BEFORE + 1, BEFORE + 17))
    assert await journalled_views(journal) == ids
    assert await beats(journal) == set(ids)  # each view's heartbeat in its transaction
    # the first alone, the fifteen that queued behind it in one more
    assert len(commits) <= 3, len(commits)
    report = await journal.verify()
    assert report.ok and report.events == BEFORE + 16 and report.head_seq == BEFORE + 16, \
        report.problems
    anchored = journal.anchor.read()
    assert anchored is not None and anchored.seq == BEFORE + 16


async def test_an_event_that_fails_in_a_group_fails_alone(journal: Journal) -> None:
    await journal.open_view(view_open("taken"), "node-a")
    ids = ["a", "b", "taken", "c", "d"]  # "taken" again: its heartbeat row exists
    results = await asyncio.gather(*(journal.open_view(view_open(v), "node-a") for v in ids),
                                   return_exceptions=True)
    assert isinstance(results[2], JournalUnavailable), results
    assert all(isinstance(r, int) for i, r in enumerate(results) if i != 2), results
    assert await journalled_views(journal) == ["taken", "a", "b", "c", "d"]
    report = await journal.verify()
    assert report.ok and report.events == BEFORE + 5, report.problems


async def test_a_caller_that_gives_up_while_queued_is_never_written(
        journal: Journal) -> None:
    first = asyncio.create_task(journal.open_view(view_open("first"), "node-a"))
    queued = asyncio.create_task(journal.open_view(view_open("gave-up"), "node-a"))
    await asyncio.sleep(0)  # one step: first holds the journal's commit, queued waits
    queued.cancel()
    await first
    with pytest.raises(asyncio.CancelledError):
        await queued
    await journal.open_view(view_open("after"), "node-a")
    assert await journalled_views(journal) == ["first", "after"]
    assert await beats(journal) == {"first", "after"}
    assert (await journal.verify()).ok
