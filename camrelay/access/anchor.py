"""The journal's anchor: how far the journal reached, kept where a database edit cannot
reach it (``<data_dir>/audit.anchor``, beside ``audit.key``).

The head row in the database is sealed with the audit key, but whoever can edit the
database can drop the journal's tables, or cut its tail and put back a head row sealed
earlier.  The anchor file holds the sequence number and HMAC of the last event this
machine appended, sealed with the key.  Start-up refuses a journal that no longer holds
the anchored event, and ``verify`` reports it.

Every append moves the anchor after its transaction committed, so the anchor is never
ahead of the journal (a crash in between leaves it one event behind).  Several worker
processes on one machine share the file: an ``flock`` on ``audit.anchor.lock``
serialises the writers, and a writer that finds the anchor already further leaves it.
Each node of a PostgreSQL cluster keeps its own anchor: how far the journal was when
that node last appended.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from camrelay.errors import StoreError
from camrelay.private import FILE_MODE, write_atomic

ANCHOR_FILE = "audit.anchor"
RECOVERY = "camrelay audit reanchor --accept-loss"


class JournalCut(StoreError):
    """The journal no longer holds what the anchor says it held: events were removed."""

    title = "Access journal cut"


@dataclass(frozen=True, slots=True)
class AnchorPoint:
    seq: int
    mac: str


class Anchor:
    def __init__(self, data_dir: Path, key: bytes) -> None:
        self.path = data_dir / ANCHOR_FILE
        self._lock_path = data_dir / f"{ANCHOR_FILE}.lock"
        self._key = key
        self._lock_fd: int | None = None

    def _seal(self, seq: int, mac: str) -> str:
        return hmac.new(self._key, f"anchor|{seq}|{mac}".encode("ascii"),
                        hashlib.sha256).hexdigest()

    def _load(self) -> dict[str, object] | None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise JournalCut(f"the journal anchor {self.path} is damaged; check it, then run "
                             f"`{RECOVERY}`")
        return data

    def read(self) -> AnchorPoint | None:
        """The anchored point (None: no anchor yet); ``JournalCut`` if the file was edited
        or was sealed with another audit key."""
        data = self._load()
        if data is None:
            return None
        seq, mac, seal = data.get("seq"), data.get("mac"), data.get("seal")
        if not (isinstance(seq, int) and isinstance(mac, str) and isinstance(seal, str)
                and mac.isascii()
                and hmac.compare_digest(self._seal(seq, mac), seal)):
            raise JournalCut(
                f"the journal anchor {self.path} does not match its seal: it was edited, or "
                "the audit key (audit.key, audit_key) is not the one the journal was written "
                f"with; with the right key, or after checking, run `{RECOVERY}`")
        return AnchorPoint(seq, mac)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        if self._lock_fd is None:
            self._lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _write(self, seq: int, mac: str, *, sync: bool) -> None:
        body = {"seq": seq, "mac": mac, "seal": self._seal(seq, mac)}
        write_atomic(self.path, json.dumps(body).encode("ascii") + b"\n", sync=sync)

    def advance(self, seq: int, mac: str) -> None:
        """Anchor event ``seq`` unless another writer already anchored a later one."""
        with self._locked():
            data = self._load()
            current = data.get("seq") if data is not None else None
            if isinstance(current, int) and current >= seq:
                return
            self._write(seq, mac, sync=False)

    def reset(self, seq: int, mac: str) -> None:
        """Anchor event ``seq`` whatever was anchored before (adoption, recovery)."""
        with self._locked():
            self._write(seq, mac, sync=True)

    def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
