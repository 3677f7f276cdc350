"""The journal: append-only in the store, HMAC chain, verify, heartbeats and recovery."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from camrelay.access.anchor import JournalCut
from camrelay.access.journal import RECOVERED, Journal, JournalEvent, RecordFilter
from camrelay.settings import Settings
from camrelay.store import Store
from tests.access.conftest import Folks, open_view


@pytest.fixture
async def journal(settings: Settings, store: Store) -> AsyncIterator[Journal]:
    j = Journal(settings, store)
    await j.start()
    for i in range(6):
        await j.append(JournalEvent(kind="admin", action=f"test.{i}", username="admin",
                                    result="ok", detail={"i": i, "名": "值"}))
    yield j
    await j.close()


async def raw(journal: Journal, *statements: str) -> None:
    async with journal.engine.begin() as conn:
        for statement in statements:
            await conn.execute(text(statement))


def drop_triggers(journal: Journal) -> list[str]:
    if journal.dialect == "sqlite":
        return ["DROP TRIGGER journal_append_only_update",
                "DROP TRIGGER journal_append_only_delete"]
    return ["DROP TRIGGER journal_append_only ON journal",
            "DROP TRIGGER journal_no_truncate ON journal"]


async def test_clean_journal_verifies(journal: Journal) -> None:
    report = await journal.verify()
    assert report.ok and report.events == 6 and report.head_seq == 6, report.problems


@pytest.mark.parametrize("statement", ["UPDATE journal SET reason = 'x' WHERE seq = 2",
                                       "DELETE FROM journal WHERE seq = 6"])
async def test_store_refuses_update_and_delete(journal: Journal, statement: str) -> None:
    with pytest.raises(DBAPIError, match="append-only"):
        await raw(journal, statement)
    assert (await journal.verify()).ok


@pytest.mark.parametrize("backend", ["postgres"])  # SQLite has no TRUNCATE
async def test_truncate_refused_on_postgres(journal: Journal) -> None:
    assert journal.dialect == "postgresql"
    with pytest.raises(DBAPIError, match="append-only"):
        await raw(journal, "TRUNCATE journal")


async def problems(journal: Journal) -> list[str]:
    report = await journal.verify()
    assert not report.ok
    return [f"{p['seq']}: {p['problem']}" for p in report.problems]


async def test_verify_finds_an_edited_event(journal: Journal) -> None:
    """A raw UPDATE behind camrelay's back (after dropping the trigger, as an attacker would)."""
    await raw(journal, *drop_triggers(journal),
              "UPDATE journal SET username = 'nobody' WHERE seq = 3")
    found = await problems(journal)
    assert len(found) == 1 and found[0].startswith("3:") and "edited" in found[0]


async def test_verify_finds_a_deleted_event(journal: Journal) -> None:
    await raw(journal, *drop_triggers(journal), "DELETE FROM journal WHERE seq = 4")
    found = await problems(journal)
    assert any(f.startswith("4:") and "missing" in f for f in found), found


async def test_verify_finds_an_inserted_event(journal: Journal) -> None:
    await raw(journal, "INSERT INTO journal (seq, at, kind, action, result, mac) VALUES "
                       "(7, '2026-01-01 00:00:00', 'admin', 'forged', 'ok', '" + "0" * 64 + "')")
    found = await problems(journal)
    assert any(f.startswith("7:") for f in found), found


async def test_verify_finds_a_truncated_journal(journal: Journal) -> None:
    await raw(journal, *drop_triggers(journal), "DELETE FROM journal WHERE seq >= 5")
    found = await problems(journal)
    assert any("truncated" in f for f in found), found


async def test_verify_finds_an_edited_head(journal: Journal) -> None:
    """Truncating and winding the head back is caught by the head's seal."""
    await raw(journal, *drop_triggers(journal), "DELETE FROM journal WHERE seq >= 5",
              "UPDATE journal_head SET seq = 4, mac = (SELECT mac FROM journal WHERE seq = 4)")
    found = await problems(journal)
    assert any("seal" in f for f in found), found


async def test_start_restores_a_dropped_trigger(journal: Journal, settings: Settings,
                                                store: Store) -> None:
    await raw(journal, *drop_triggers(journal))
    await journal.close()
    again = Journal(settings, store)
    await again.start()
    try:
        with pytest.raises(DBAPIError, match="append-only"):
            await raw(again, "DELETE FROM journal WHERE seq = 1")
        (restored,) = await again.records(RecordFilter(kind="journal"))
        assert restored["action"] == "protection.restored"
        assert (await again.verify()).ok
    finally:
        await again.close()


async def test_wrong_key_fails_verification(journal: Journal, settings: Settings,
                                            store: Store) -> None:
    from dataclasses import replace

    other = Journal(replace(settings, audit_key="another-key-entirely"), store)
    try:
        # the anchor is sealed with the journal's key: another key does not start
        with pytest.raises(JournalCut, match="audit key"):
            await other.start()
        assert not (await other.verify()).ok
    finally:
        await other.close()


async def test_journal_unavailable_refuses_the_view(client: TestClient[Any, Any],
                                                    folks: Folks) -> None:
    from camrelay.access.journal import JournalUnavailable
    from camrelay.web.keys import JOURNAL_KEY, VIEWS_KEY

    j = client.app[JOURNAL_KEY]
    await raw(j, *drop_triggers(j), "DROP TABLE journal_head")
    with pytest.raises(JournalUnavailable) as err:
        await open_view(client, folks.request("county_op", "county"))
    assert err.value.status == 503
    assert not client.app[VIEWS_KEY].open_views()


async def test_crash_recovery_closes_at_last_heartbeat(client: TestClient[Any, Any],
                                                       folks: Folks, settings: Settings,
                                                       store: Store) -> None:
    """A process that vanished without closing: the next start closes its views."""
    from camrelay.access.journal import load_node_id
    from camrelay.web.keys import JOURNAL_KEY, VIEWS_KEY

    views = client.app[VIEWS_KEY]
    view = await open_view(client, folks.request("county_op", "county"))
    await asyncio.sleep(0.05)
    await client.app[JOURNAL_KEY].heartbeat(views.node)
    views._views.clear()  # abandon it, as kill -9 would
    fresh = Journal(settings, store)
    await fresh.start()
    try:
        assert await fresh.recover(node=load_node_id(settings.data_dir)) == 1
        (record,) = await fresh.records(RecordFilter(kind="view"))
        assert record["view_id"] == view.view_id and record["close_reason"] == RECOVERED
        assert record["duration_s"] > 0.04
        assert (await fresh.verify()).ok
    finally:
        await fresh.close()


@pytest.mark.parametrize("backend", ["sqlite"])  # the database-wide write lock is SQLite's
async def test_views_not_held_up_by_a_large_import(client: TestClient[Any, Any],
                                                   folks: Folks, world: Any,
                                                   backend: str) -> None:
    """The import holds the store's write lock for many seconds; opens stay fast.

    SQLite only (PostgreSQL locks rows, not the database).  The import is batched (about
    0.1 ms a row), so it takes many rows to hold the lock for a couple of seconds;
    CAMRELAY_TEST_IMPORT_ROWS changes the size.
    """
    n = int(__import__("os").environ.get("CAMRELAY_TEST_IMPORT_ROWS", "20000"))
    rows = [(i + 2, {"external_id": f"imp-{i}", "name": f"import {i}", "unit": "330110",
                     "category": "expressway", "main_url": f"rtsp://10.9.0.1/{i}"})
            for i in range(n)]
    started = time.monotonic()
    task = asyncio.create_task(world.catalog.import_cameras(rows))
    latencies: list[float] = []
    try:
        while not task.done():
            t0 = time.monotonic()
            view = await open_view(client, folks.request("county_op", "county"))
            latencies.append(time.monotonic() - t0)
            await view.close()
            await asyncio.sleep(0.02)
        report = await task
    finally:
        if not task.done():
            task.cancel()
    took = time.monotonic() - started
    assert report.added == n
    assert len(latencies) >= 5, f"the import took only {took:.2f}s"
    # the import is one transaction: an open's journal record (a write) waits for its
    # write phase, never for the whole import; relative, as a loaded machine slows the
    # import and the opens alike (load 3: 1.0-1.6 s of a 2.8-3.3 s import)
    assert max(latencies) < max(1.0, took / 2), (
        f"slowest open: {max(latencies):.3f}s of {len(latencies)} during a {took:.2f}s import")


def cut(journal: Journal, how: str) -> list[str]:
    """The three ways of issue 12 to lose a journal behind camrelay's back."""
    if how == "tables dropped":
        return ["DROP TABLE journal", "DROP TABLE journal_head"]
    if how == "wiped":
        return [*drop_triggers(journal), "DELETE FROM journal", "DELETE FROM journal_head"]
    return [*drop_triggers(journal), "DELETE FROM journal WHERE seq >= 4",
            "DELETE FROM journal_head"]


@pytest.mark.parametrize("how", ["tables dropped", "wiped", "tail and head cut"])
async def test_a_cut_journal_is_refused_at_start_and_fails_verify(
        journal: Journal, settings: Settings, store: Store, how: str) -> None:
    """Before the anchor, start-up recreated or rebuilt these and verify said ok."""
    await raw(journal, *cut(journal, how))
    await journal.close()
    again = Journal(settings, store)
    try:
        with pytest.raises(JournalCut, match="camrelay audit reanchor --accept-loss"):
            await again.start()
        report = await again.verify()  # nothing was recreated or rebuilt by that start
        assert not report.ok
        found = " | ".join(p["problem"] for p in report.problems)
        assert "audit.anchor" in found and "6" in found, found
        if how == "tables dropped":
            assert "tables are missing" in found
        # the operator knowingly goes on; the loss is on record and the chain verifies
        await again.start(accept_loss="issue 12 test")
        resets = [r for r in await again.records(RecordFilter(kind="journal"))
                  if r["action"] == "anchor.reset"]
        assert len(resets) == 1 and resets[0]["reason"] == "issue 12 test"
        assert resets[0]["detail"]["anchored_seq"] == 6
        assert (await again.verify()).ok
    finally:
        await again.close()
    later = Journal(settings, store)
    try:
        await later.start()  # re-anchored: a plain start works again
        assert (await later.verify()).ok
    finally:
        await later.close()


async def test_a_head_put_back_from_earlier_is_caught(journal: Journal, settings: Settings,
                                                      store: Store) -> None:
    """Cut the tail and put back a head row sealed earlier (a replay): the seal matches,
    the anchor does not."""
    async with journal.engine.connect() as conn:
        seq, mac, seal = (await conn.execute(text(
            "SELECT seq, mac, seal FROM journal_head"))).one()
    for i in range(3):
        await journal.append(JournalEvent(kind="admin", action=f"later.{i}", result="ok"))
    await raw(journal, *drop_triggers(journal), f"DELETE FROM journal WHERE seq > {seq}",
              f"UPDATE journal_head SET seq = {seq}, mac = '{mac}', seal = '{seal}'")
    found = await problems(journal)
    assert any("anchor" in f and "9" in f for f in found), found
    await journal.close()
    again = Journal(settings, store)
    try:
        with pytest.raises(JournalCut, match="reanchor"):
            await again.start()
    finally:
        await again.close()


async def test_the_anchor_follows_every_append(journal: Journal) -> None:
    """The last event is anchored at once: a cut of even one event is found."""
    seq = await journal.append(JournalEvent(kind="admin", action="one more", result="ok"))
    anchored = journal.anchor.read()
    assert anchored is not None and anchored.seq == seq == 7
    await raw(journal, *drop_triggers(journal), "DELETE FROM journal WHERE seq = 7",
              "UPDATE journal_head SET seq = 6, mac = (SELECT mac FROM journal WHERE seq = 6)")
    found = await problems(journal)
    assert any("anchor" in f for f in found), found


async def test_a_torn_anchor_slot_falls_back_to_the_other(journal: Journal) -> None:
    from camrelay.access.anchor import SLOT

    path = journal.anchor.path
    raw = bytearray(path.read_bytes())
    newest = 0 if b'"seq": 6,' in raw[:SLOT] else 1
    raw[newest * SLOT:newest * SLOT + 40] = b"\0" * 40  # a write torn by a power cut
    path.write_bytes(bytes(raw))
    anchored = journal.anchor.read()
    assert anchored is not None and anchored.seq == 5
    path.write_bytes(b"x" * (2 * SLOT))  # nothing sealed is left: edited
    with pytest.raises(JournalCut, match="does not match its seal"):
        journal.anchor.read()


async def test_the_view_record_says_audio_was_delivered(client: TestClient[Any, Any],
                                                        folks: Folks) -> None:
    from camrelay.web.keys import JOURNAL_KEY

    heard = await open_view(client, folks.request("county_op", "county"))
    heard.note_audio("PCMA")  # what the WebRTC session tells its view
    await heard.close("ended by viewer")
    silent = await open_view(client, folks.request("county_op", "county"))
    await silent.close("ended by viewer")
    journal = client.app[JOURNAL_KEY]
    records = {r["view_id"]: r for r in await journal.records(RecordFilter(kind="view"))}
    assert records[heard.view_id]["audio"] == "PCMA"
    assert records[silent.view_id]["audio"] is None
    assert (await journal.verify()).ok
