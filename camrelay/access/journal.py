"""The access journal: append-only events chained by HMAC, so nothing is lost unnoticed.

Every event carries ``mac = HMAC(key, previous mac | canonical content)``; the key is
kept outside the database (``audit_key`` or ``<data_dir>/audit.key``).  A one-row head
(``journal_head``) holds the last sequence number and mac, sealed with the key, so
``verify`` finds an edited, deleted, inserted or truncated event.  The store refuses
UPDATE and DELETE on the journal (SQLite triggers, PostgreSQL triggers); start-up puts
back a trigger someone dropped and journals that it did.  The anchor file
(``camrelay.access.anchor``) keeps the last event's number and mac outside the
database: start-up refuses a journal that lost the anchored event (dropped, wiped, cut,
head wound back) until ``camrelay audit reanchor --accept-loss`` records the loss.  It
is moved after each commit on the event loop (one ``pwrite``, tens of microseconds:
less than a hop to a thread).

Writers that arrive while a commit is in flight are written together by the next one
(group commit): one transaction chains their events in arrival order, the head and the
anchor move once, and each caller returns only after that commit; a group that fails is
written again one event at a time, and a caller that gave up before its group was taken
is never written.

A view writes *view.open* before media flows and *view.close* when it ends; while it
is open a row in ``view_heartbeats`` (not part of the journal) is refreshed, so after a
crash the next start closes it at its last heartbeat.  On SQLite the journal lives in
its own database file next to the store (``<name>-audit.db``): a long catalogue import
holds the store's write lock, never the journal's.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import and_, func, inspect, or_, select, text, update

from camrelay.access.accounts import User
from camrelay.access.anchor import RECOVERY, Anchor, AnchorPoint, JournalCut
from camrelay.errors import CamrelayError, StoreError
from camrelay.fields import utcnow
from camrelay.settings import Settings
from camrelay.store import Store, make_engine, schema
from camrelay.store.crypto import load_or_create_key
from camrelay.store.db import AsyncConnection, AsyncEngine
from camrelay.store.private import DIR_MODE, private_dir, private_sqlite

log = logging.getLogger(__name__)

_j = schema.journal
_head = schema.journal_head
_beats = schema.view_heartbeats

GENESIS = "camrelay-journal-genesis"
WRITE_TIMEOUT = 5.0
RECOVERED = "server stopped unexpectedly; closed at its last heartbeat"

# the content covered by each event's mac, in this order
FIELDS = (
    "seq", "at", "kind", "action", "view_id", "user_id", "username", "unit_code", "camera_id",
    "camera_name", "camera_unit_code", "purpose", "basis", "grant_id", "approver",
    "emergency_id", "incident", "client_address", "user_agent", "result", "reason", "detail",
)
_LIMITS = {"kind": 32, "action": 64, "view_id": 32, "username": 64, "unit_code": 64,
           "camera_name": 200, "camera_unit_code": 64, "incident": 200, "client_address": 64,
           "user_agent": 400, "approver": 64, "basis": 16, "result": 16, "purpose": 2000,
           "reason": 2000}


class JournalUnavailable(CamrelayError):
    """The access journal cannot be written: uses that must be registered are refused."""

    status = 503
    title = "Access log unavailable"


@dataclass(frozen=True, slots=True)
class JournalEvent:
    kind: str  # view.open, view.close, view.denied, admin, auth, journal
    action: str | None = None
    view_id: str | None = None
    user_id: int | None = None
    username: str | None = None
    unit_code: str | None = None
    camera_id: int | None = None
    camera_name: str | None = None
    camera_unit_code: str | None = None
    purpose: str | None = None
    basis: str | None = None
    grant_id: int | None = None
    approver: str | None = None
    emergency_id: int | None = None
    incident: str | None = None
    client_address: str | None = None
    user_agent: str | None = None
    result: str | None = None
    reason: str | None = None
    detail: dict[str, Any] | None = None
    at: datetime | None = None


@dataclass(slots=True)
class VerifyReport:
    ok: bool = True
    events: int = 0
    head_seq: int | None = None
    problems: list[dict[str, Any]] = field(default_factory=list)

    def add(self, seq: int | None, problem: str) -> None:
        self.ok = False
        if len(self.problems) < 1000:
            self.problems.append({"seq": seq, "problem": problem})


@dataclass(frozen=True, slots=True)
class RecordFilter:
    user: str | None = None
    unit: str | None = None  # the user's or the camera's unit
    camera_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    result: str | None = None
    kind: str | None = None  # view, denied, admin, auth, journal
    scope_units: frozenset[str] | None = None  # unit codes the reader may see
    unitless: bool = False  # with scope_units: also events of no unit (sign-in, journal)
    only_user_id: int | None = None


KINDS = {"view": "view.open", "denied": "view.denied", "admin": "admin", "auth": "auth",
         "journal": "journal"}


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace(
        "+00:00", "Z")


def _canonical(values: dict[str, Any]) -> bytes:
    content = [_iso(values["at"]) if name == "at" else values.get(name) for name in FIELDS]
    return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def journal_path(settings: Settings) -> Path | None:
    """Where the SQLite journal lives (None: in the PostgreSQL store)."""
    url = settings.effective_database_url
    if not url.startswith("sqlite"):
        return None
    main = Path(url.split("///", 1)[1])
    return main.with_name(f"{main.stem}-audit{main.suffix or '.db'}")


@dataclass(eq=False, slots=True)
class _Pending:
    """An event waiting for the journal's next commit, and how it went."""

    event: JournalEvent
    extra: Any  # async (conn) -> None, in the same transaction, or None
    deadline: float  # the caller's, on the loop's clock
    done: bool = False
    abandoned: bool = False  # its caller gave up (time-out, cancellation)
    seq: int | None = None
    error: BaseException | None = None


class Journal:
    def __init__(self, settings: Settings, store: Store) -> None:
        self.key = load_or_create_key(settings.audit_key, settings.data_dir,
                                      "audit.key").encode("utf-8")
        self.path = journal_path(settings)
        if self.path is not None:
            self.engine: AsyncEngine = make_engine(f"sqlite+aiosqlite:///{self.path}")
            self._own_engine = True
        else:
            self.engine = store.engine
            self._own_engine = False
        self.anchor = Anchor(settings.data_dir, self.key)
        self._lock = asyncio.Lock()
        self._queue: list[_Pending] = []  # waiting for the next group commit
        self._started = False

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    # ---- set-up ------------------------------------------------------------------------

    async def start(self, *, accept_loss: str | None = None) -> None:
        """Create the tables, head and triggers (idempotent; restores a dropped trigger).

        ``JournalCut`` if the journal no longer holds the event the anchor names (tables
        dropped, tail cut, head wound back): nothing is created or rebuilt then.  With
        ``accept_loss`` (the reason, from ``camrelay audit reanchor --accept-loss``) the
        journal goes on from what is left, the loss is journalled and the anchor reset."""
        if self._started:
            return
        if self.path is not None:
            self.path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
            private_sqlite(self.path)
        anchor, anchor_problem = self._read_anchor(strict=accept_loss is None)
        restored: list[str] = []
        found: int | None = None
        try:
            async with self.engine.begin() as conn:
                if self.dialect == "postgresql":
                    await conn.execute(text("SELECT pg_advisory_xact_lock(7261032)"))
                existed = await conn.run_sync(lambda c: inspect(c).has_table("journal"))
                if not existed and anchor is not None and anchor.seq > 0 \
                        and accept_loss is None:
                    raise JournalCut(
                        f"the access journal is gone: its tables are missing from the store, "
                        f"but the anchor {self.anchor.path} says it held {anchor.seq} "
                        "event(s); camrelay will not start a new journal in its place. "
                        "Restore it from a backup (camrelay restore), or run "
                        f"`{RECOVERY}` to go on with an empty one and record the loss")
                await conn.run_sync(schema.journal_metadata.create_all)
                restored = await self._ensure_triggers(conn)
                head = (await conn.execute(select(_head))).first()
                if accept_loss is None and anchor is not None:
                    await self._check_anchor(conn, anchor, head)
                if head is None:
                    last = (await conn.execute(
                        select(_j.c.seq, _j.c.mac).order_by(_j.c.seq.desc()).limit(1))).first()
                    seq, mac = (0, self._genesis()) if last is None else (last.seq, last.mac)
                    if last is not None:
                        log.error("the access journal's head was missing; rebuilt at event %d",
                                  seq)
                        restored.append("journal_head")
                    await conn.execute(_head.insert().values(id=1, seq=seq, mac=mac,
                                                             seal=self._seal(seq, mac)))
                elif accept_loss is not None and not hmac.compare_digest(
                        self._seal(int(head.seq), head.mac), head.seal):
                    raise StoreError(
                        "the journal's head does not match the audit key either: check "
                        "audit.key (or audit_key) before accepting any loss")
                found = int(head.seq) if head is not None else None
        except CamrelayError:
            raise
        except Exception as err:  # noqa: BLE001 - reported as a store error at start-up
            raise StoreError(f"cannot open the access journal: {type(err).__name__}: {err}"
                             ) from None
        self._started = True
        if accept_loss is not None:
            await self._reanchor(accept_loss, anchor, anchor_problem, found)
        elif anchor is None:
            seq, mac = await self._head()
            self.anchor.reset(seq, mac)
            log.info("the access journal is anchored at event %d in %s", seq,
                     self.anchor.path)
        if existed and restored:
            log.error("access journal protection was missing and has been restored: %s",
                      ", ".join(restored))
            await self.append(JournalEvent(kind="journal", action="protection.restored",
                                           result="ok", detail={"restored": restored}))

    def _read_anchor(self, *, strict: bool) -> tuple[AnchorPoint | None, str | None]:
        try:
            return self.anchor.read(), None
        except JournalCut as err:
            if strict:
                raise
            return None, err.detail

    async def _check_anchor(self, conn: AsyncConnection, anchor: AnchorPoint,
                            head: Any) -> None:
        problem = await self._anchor_problem(conn, anchor, head)
        if problem is not None:
            raise JournalCut(
                f"the access journal lost events: {problem}; camrelay will not start on it. "
                f"Restore the journal from a backup (camrelay restore), or run `{RECOVERY}` "
                "to go on with what is left and record the loss")

    async def _anchor_problem(self, conn: AsyncConnection, anchor: AnchorPoint,
                              head: Any) -> str | None:
        if anchor.seq == 0:
            return None
        where = f"the anchor {self.anchor.path} says it reached event {anchor.seq}"
        mac = (await conn.execute(select(_j.c.mac).where(_j.c.seq == anchor.seq))
               ).scalar_one_or_none()
        if mac is None:
            return f"{where}, which is missing (cut off)"
        if mac != anchor.mac:
            return f"{where}, but that event is another one now (replaced)"
        if head is not None and int(head.seq) < anchor.seq:
            return f"{where}, but the head was wound back to event {head.seq}"
        return None

    async def _head(self) -> tuple[int, str]:
        async with self.engine.connect() as conn:
            head = (await conn.execute(select(_head.c.seq, _head.c.mac).where(_head.c.id == 1))
                    ).one()
        return int(head.seq), str(head.mac)

    async def _reanchor(self, reason: str, anchor: AnchorPoint | None,
                        anchor_problem: str | None, found: int | None) -> None:
        detail: dict[str, Any] = {"anchored_seq": None if anchor is None else anchor.seq,
                                  "head_seq_found": found}
        if anchor_problem is not None:
            detail["anchor_problem"] = anchor_problem
        log.warning("re-anchoring the access journal knowingly: %s (%s)", reason, detail)
        await self.append(JournalEvent(kind="journal", action="anchor.reset", result="ok",
                                       reason=reason, detail=detail))
        seq, mac = await self._head()
        self.anchor.reset(seq, mac)

    async def _ensure_triggers(self, conn: AsyncConnection) -> list[str]:
        if self.dialect == "sqlite":
            present = set((await conn.execute(text(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'journal'"
            ))).scalars())
            wanted = {"journal_append_only_update": "UPDATE",
                      "journal_append_only_delete": "DELETE"}
            for name, op in wanted.items():
                if name not in present:
                    await conn.execute(text(
                        f"CREATE TRIGGER {name} BEFORE {op} ON journal BEGIN "
                        "SELECT RAISE(ABORT, 'the access journal is append-only'); END"))
            return sorted(set(wanted) - present)
        await conn.execute(text(
            "CREATE OR REPLACE FUNCTION camrelay_journal_append_only() RETURNS trigger "
            "LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'the access journal is append-only'; "
            "END $$"))
        present = set((await conn.execute(text(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = 'journal'::regclass "
            "AND NOT tgisinternal"))).scalars())
        wanted_pg = {
            "journal_append_only": "BEFORE UPDATE OR DELETE ON journal FOR EACH ROW",
            "journal_no_truncate": "BEFORE TRUNCATE ON journal FOR EACH STATEMENT",
        }
        for name, spec in wanted_pg.items():
            if name not in present:
                await conn.execute(text(f"CREATE TRIGGER {name} {spec} "
                                        "EXECUTE FUNCTION camrelay_journal_append_only()"))
        return sorted(set(wanted_pg) - present)

    async def close(self) -> None:
        self.anchor.close()
        if self._own_engine:
            await self.engine.dispose()

    # ---- the chain ---------------------------------------------------------------------

    def _genesis(self) -> str:
        return hmac.new(self.key, GENESIS.encode(), hashlib.sha256).hexdigest()

    def _mac(self, prev: str, values: dict[str, Any]) -> str:
        return hmac.new(self.key, prev.encode("ascii") + b"|" + _canonical(values),
                        hashlib.sha256).hexdigest()

    def _seal(self, seq: int, mac: str) -> str:
        return hmac.new(self.key, f"head|{seq}|{mac}".encode("ascii"),
                        hashlib.sha256).hexdigest()

    @staticmethod
    def _values(event: JournalEvent) -> dict[str, Any]:
        values = asdict(event)
        values["at"] = (event.at or utcnow()).astimezone(UTC)
        for name, limit in _LIMITS.items():
            value = values.get(name)
            if isinstance(value, str) and len(value) > limit:
                values[name] = value[:limit]
        detail = values.pop("detail")
        values["detail"] = None if detail is None else json.dumps(
            detail, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)
        return values

    async def _append_in(self, conn: AsyncConnection, batch: list[_Pending]
                         ) -> tuple[int, str]:
        """Chain ``batch``'s events, in order, after the head; the last seq and mac."""
        rows = [self._values(p.event) for p in batch]
        # taking the head row first serialises writers (a row lock on PostgreSQL, the
        # write lock on SQLite) before the previous mac is read
        bumped = await conn.execute(update(_head).where(_head.c.id == 1).values(
            seq=_head.c.seq + len(rows)))
        if bumped.rowcount != 1:
            raise StoreError("the access journal has no head row; restart camrelay to rebuild it")
        head = (await conn.execute(select(_head.c.seq, _head.c.mac).where(_head.c.id == 1))
                ).one()
        seq, mac = int(head.seq) - len(rows), str(head.mac)
        for pending, values in zip(batch, rows, strict=True):
            seq += 1
            values["seq"] = seq
            mac = values["mac"] = self._mac(mac, values)
            pending.seq = seq
        await conn.execute(_j.insert(), rows)
        for pending in batch:
            if pending.extra is not None:
                await pending.extra(conn)
        await conn.execute(update(_head).where(_head.c.id == 1).values(
            mac=mac, seal=self._seal(seq, mac)))
        return seq, mac

    async def _commit(self, batch: list[_Pending]) -> None:
        """Write ``batch`` in one transaction (one commit, one move of the anchor)."""
        async with self.engine.begin() as conn:
            seq, mac = await self._append_in(conn, batch)
        # after the commit, so the anchor is never ahead of the journal
        try:
            self.anchor.advance(seq, mac)
        except OSError as err:
            log.error("cannot move the journal anchor %s to event %d: %s (the event is "
                      "written; a cut after it may go unnoticed)", self.anchor.path, seq, err)

    async def _write(self, event: JournalEvent, extra: Any = None) -> int:
        """Write ``event`` (and ``extra(conn)`` in its transaction); its seq once committed.

        Group commit: the events that arrive while a transaction is in flight wait for
        the lock and are then written together by whichever of them takes it first, in
        arrival order, in one transaction; each caller returns only after the commit
        that holds its event.  A failed group is written again one event at a time, so
        an event's own error is its caller's alone."""
        pending = _Pending(event, extra, asyncio.get_running_loop().time() + WRITE_TIMEOUT)
        self._queue.append(pending)
        try:
            async with asyncio.timeout_at(pending.deadline), self._lock:
                if not pending.done:
                    batch, self._queue = self._queue, []
                    # the group's transaction ends by its earliest caller's deadline: a
                    # caller that gave up never has its event written after all
                    async with asyncio.timeout_at(min(p.deadline for p in batch)):
                        await self._flush(batch, pending)
        except BaseException:
            pending.abandoned = True
            if pending in self._queue:  # given up before any transaction took it
                self._queue.remove(pending)
            raise
        if pending.error is not None:
            raise pending.error
        assert pending.seq is not None
        return pending.seq

    async def _flush(self, batch: list[_Pending], own: _Pending) -> None:
        try:
            try:
                await self._commit(batch)
            except Exception:
                if len(batch) == 1:
                    raise
                log.warning("a group of %d journal events failed; writing them one by one",
                            len(batch))
                for one in batch:
                    one.seq = None
                    try:
                        await self._commit([one])
                    except Exception as err:  # noqa: BLE001 - the caller's to raise
                        one.error = err
                    one.done = True
            for one in batch:
                one.done = True
        except BaseException as err:
            # the lone event's failure, the group's deadline or the writer's cancellation:
            # nothing of the transaction is written.  An event whose caller still waits
            # goes back to the queue (that caller writes it); the others are refused.
            now = asyncio.get_running_loop().time()
            again = [] if isinstance(err, Exception) else [
                one for one in batch
                if not (one.done or one.abandoned or one is own) and now < one.deadline]
            for one in batch:
                if not one.done and one not in again:
                    one.seq = None
                    one.error = err if isinstance(err, Exception) else TimeoutError()
                    one.done = True
            self._queue[:0] = again
            raise

    async def append(self, event: JournalEvent) -> int:
        """Write one event; ``JournalUnavailable`` if it cannot be written."""
        try:
            return await self._write(event)
        except (TimeoutError, Exception) as err:
            if isinstance(err, CamrelayError):
                raise
            log.error("cannot write the access journal: %s: %s", type(err).__name__, err)
            raise JournalUnavailable(
                "the access log cannot be written right now, so this use is refused "
                "(every use must be registered); try again shortly") from None

    async def open_view(self, event: JournalEvent, node: str) -> int:
        at = event.at or utcnow()

        async def beat(conn: AsyncConnection) -> None:
            await conn.execute(_beats.insert().values(view_id=event.view_id, node=node,
                                                      opened_at=at, last_at=at))

        try:
            return await self._write(replace(event, at=at), beat)
        except (TimeoutError, Exception) as err:
            if isinstance(err, CamrelayError):
                raise
            log.error("cannot write the access journal: %s: %s", type(err).__name__, err)
            raise JournalUnavailable(
                "the access log cannot be written right now, so the view is refused "
                "(every use must be registered); try again shortly") from None

    async def close_view(self, event: JournalEvent) -> int:
        async def forget(conn: AsyncConnection) -> None:
            await conn.execute(_beats.delete().where(_beats.c.view_id == event.view_id))

        return await self._write(event, forget)

    async def record_admin(self, user: User, action: str, *, camera_id: int | None = None,
                           detail: dict[str, Any] | None = None,
                           client_address: str | None = None, result: str = "ok") -> int:
        return await self.append(JournalEvent(
            kind="admin", action=action, user_id=user.id, username=user.username,
            unit_code=user.unit_code, camera_id=camera_id, result=result, detail=detail,
            client_address=client_address))

    # ---- heartbeats and crash recovery -------------------------------------------------

    async def heartbeat(self, node: str) -> None:
        async with asyncio.timeout(WRITE_TIMEOUT), self.engine.begin() as conn:
            await conn.execute(update(_beats).where(_beats.c.node == node).values(
                last_at=utcnow()))

    async def recover(self, *, node: str | None = None,
                      stale_before: datetime | None = None) -> int:
        """Close the views a crashed process left open, at their last heartbeat."""
        async with self.engine.connect() as conn:
            query = select(_beats)
            if node is not None:
                query = query.where(_beats.c.node == node)
            if stale_before is not None:
                query = query.where(_beats.c.last_at < stale_before)
            beats = (await conn.execute(query)).mappings().all()
        closed = 0
        for beat in beats:
            async with self.engine.connect() as conn:
                opened = (await conn.execute(select(_j).where(and_(
                    _j.c.view_id == beat["view_id"], _j.c.kind == "view.open")))
                ).mappings().first()
            base: dict[str, Any] = {}
            if opened is not None:
                base = {k: opened[k] for k in (
                    "action", "user_id", "username", "unit_code", "camera_id", "camera_name",
                    "camera_unit_code", "purpose", "basis", "grant_id", "approver",
                    "emergency_id", "incident", "client_address", "user_agent")}
            event = JournalEvent(kind="view.close", view_id=beat["view_id"], result="closed",
                                 reason=RECOVERED, at=beat["last_at"],
                                 detail={"recovered_at": _iso(utcnow()), "node": beat["node"]},
                                 **base)
            await self.close_view(event)
            closed += 1
        if closed:
            log.warning("closed %d view(s) left open by a stopped process at their last "
                        "heartbeat", closed)
        return closed

    # ---- reading -----------------------------------------------------------------------

    async def _rows(self, batch: int = 2000) -> AsyncIterator[dict[str, Any]]:
        last = 0
        while True:
            async with self.engine.connect() as conn:
                rows = (await conn.execute(select(_j).where(_j.c.seq > last)
                                           .order_by(_j.c.seq).limit(batch))).mappings().all()
            if not rows:
                return
            for row in rows:
                yield dict(row)
            last = rows[-1]["seq"]

    async def verify(self) -> VerifyReport:
        report = VerifyReport()
        # the anchor first: it never gets ahead of what the journal held at any later time
        try:
            anchor = self.anchor.read()
        except JournalCut as err:
            report.add(None, err.detail)
            anchor = None
        async with self.engine.connect() as conn:
            exists = await conn.run_sync(lambda c: inspect(c).has_table("journal")
                                         and inspect(c).has_table("journal_head"))
        if not exists:
            report.add(None, "the journal's tables are missing from the store (dropped)")
            if anchor is not None and anchor.seq:
                report.add(anchor.seq, f"the anchor {self.anchor.path} says the journal held "
                           f"{anchor.seq} event(s): all of them are gone")
            return report
        prev = self._genesis()
        expected = 1
        last_seq = 0
        anchored = None
        async for row in self._rows():
            seq = int(row["seq"])
            report.events += 1
            gap = seq != expected
            if seq > expected:
                report.add(expected, f"events {expected}..{seq - 1} are missing (deleted)"
                           if seq - 1 > expected else f"event {expected} is missing (deleted)")
            if self._mac(prev, row) != row["mac"]:
                if gap:
                    report.add(seq, "the chain is broken here: the event before it was removed")
                else:
                    report.add(seq, "the event does not match its HMAC: it was edited, or "
                               "inserted without the key")
            if anchor is not None and seq == anchor.seq:
                anchored = row["mac"]
            prev = row["mac"]
            expected = seq + 1
            last_seq = seq
        async with self.engine.connect() as conn:
            head = (await conn.execute(select(_head).where(_head.c.id == 1))).first()
        if anchor is not None and anchor.seq:
            if anchored is None:
                report.add(anchor.seq, f"the anchor {self.anchor.path} says the journal reached "
                           f"event {anchor.seq}; events {last_seq + 1}..{anchor.seq} or more "
                           "were cut off" if last_seq < anchor.seq else
                           f"event {anchor.seq}, which the anchor names, is missing")
            elif anchored != anchor.mac:
                report.add(anchor.seq, f"event {anchor.seq} is not the one the anchor "
                           f"{self.anchor.path} names: it was replaced")
            elif head is not None and head.seq < anchor.seq:
                report.add(int(head.seq), f"the head was wound back to event {head.seq}; the "
                           f"anchor says the journal reached event {anchor.seq}")
        if head is None:
            report.add(None, "the journal's head is missing")
            return report
        report.head_seq = int(head.seq)
        if not hmac.compare_digest(self._seal(int(head.seq), head.mac), head.seal):
            report.add(int(head.seq), "the journal's head does not match its seal (edited, or "
                       "another audit key)")
        if last_seq < head.seq:
            report.add(last_seq + 1, f"events {last_seq + 1}..{head.seq} are missing from the "
                       "end (truncated)")
        elif last_seq > head.seq:
            report.add(int(head.seq) + 1, f"events {head.seq + 1}..{last_seq} were added "
                       "behind camrelay's back (after the sealed head)")
        elif last_seq and head.mac != prev:
            report.add(last_seq, "the last event does not match the sealed head")
        return report

    async def records(self, flt: RecordFilter, *, limit: int = 100, offset: int = 0
                      ) -> list[dict[str, Any]]:
        """One record per use: an open joined with its close; refusals and admin actions."""
        o = _j.alias("o")
        c = _j.alias("c")
        query = select(
            o, c.c.at.label("end_at"), c.c.reason.label("close_reason"),
            c.c.seq.label("close_seq"), c.c.detail.label("close_detail"),
        ).select_from(o.outerjoin(c, and_(c.c.view_id == o.c.view_id,
                                          c.c.kind == "view.close",
                                          o.c.kind == "view.open")))
        conditions: list[Any] = [o.c.kind != "view.close"]
        if flt.user is not None:
            conditions.append(o.c.username == flt.user)
        if flt.unit is not None:
            conditions.append(or_(o.c.unit_code == flt.unit, o.c.camera_unit_code == flt.unit))
        if flt.camera_id is not None:
            conditions.append(o.c.camera_id == flt.camera_id)
        if flt.since is not None:
            conditions.append(o.c.at >= flt.since)
        if flt.until is not None:
            conditions.append(o.c.at < flt.until)
        if flt.result is not None:
            conditions.append(o.c.result == flt.result)
        if flt.kind is not None:
            conditions.append(o.c.kind == KINDS.get(flt.kind, flt.kind))
        if flt.scope_units is not None:
            visible: list[Any] = [o.c.unit_code.in_(flt.scope_units),
                       o.c.camera_unit_code.in_(flt.scope_units)]
            if flt.unitless:
                visible.append(and_(o.c.unit_code.is_(None), o.c.camera_unit_code.is_(None)))
            conditions.append(or_(*visible))
        if flt.only_user_id is not None:
            conditions.append(o.c.user_id == flt.only_user_id)
        query = query.where(and_(*conditions)).order_by(o.c.seq.desc()).limit(limit).offset(
            offset)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [_record(r) for r in rows]

    async def count(self) -> int:
        async with self.engine.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(_j))).scalar_one())


def _record(row: Any) -> dict[str, Any]:
    start = row["at"]
    end = row["end_at"]
    basis = row["basis"]
    if basis == "own":
        approval = "own jurisdiction"
    elif basis == "emergency":
        approval = f"emergency ({row['incident']})"
    elif basis == "grant":
        approval = row["approver"]
    else:
        approval = None
    kind = {"view.open": "view", "view.denied": "denied"}.get(row["kind"], row["kind"])
    return {
        "id": row["seq"], "kind": kind, "action": row["action"], "user": row["username"],
        "user_id": row["user_id"], "unit": row["unit_code"], "camera_id": row["camera_id"],
        "camera": row["camera_name"], "camera_unit": row["camera_unit_code"],
        "purpose": row["purpose"], "basis": basis, "grant_id": row["grant_id"],
        "approver": approval, "emergency": basis == "emergency",
        "emergency_id": row["emergency_id"], "incident": row["incident"],
        "start": _iso(start), "end": _iso(end),
        "duration_s": None if end is None else round((end - start).total_seconds(), 3),
        "open": row["kind"] == "view.open" and end is None,
        "client_address": row["client_address"], "user_agent": row["user_agent"],
        "result": row["result"], "reason": row["reason"], "close_reason": row["close_reason"],
        "view_id": row["view_id"],
        "detail": None if row["detail"] is None else json.loads(row["detail"]),
        "audio": _audio(row["close_detail"]),
    }


def _audio(close_detail: str | None) -> str | None:
    """The codec the viewer was sent the camera's audio in (from the close event)."""
    if close_detail is None:
        return None
    audio = json.loads(close_detail).get("audio")
    return audio if isinstance(audio, str) else None


RECORD_COLUMNS = ("id", "kind", "action", "user", "unit", "camera_id", "camera", "camera_unit",
                  "purpose", "basis", "grant_id", "approver", "emergency", "incident", "start",
                  "end", "duration_s", "client_address", "user_agent", "result", "reason",
                  "close_reason", "audio")


def load_node_id(data_dir: Path) -> str:
    """This process's stable name for its heartbeats (``<data_dir>/node.id``)."""
    path = data_dir / "node.id"
    try:
        return path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        private_dir(data_dir)
        node = "node-" + secrets.token_hex(8)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_text(encoding="ascii").strip()
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(node + "\n")
        return node


__all__ = [
    "RECORD_COLUMNS",
    "Journal",
    "JournalEvent",
    "JournalUnavailable",
    "RecordFilter",
    "VerifyReport",
    "load_node_id",
]
