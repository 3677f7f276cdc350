"""The journal's anchor: how far the journal reached, kept where a database edit cannot
reach it (``<data_dir>/audit.anchor``, beside ``audit.key``).

The head row in the database is sealed with the audit key, but whoever can edit the
database can drop the journal's tables, or cut its tail and put back a head row sealed
earlier.  The anchor file holds the sequence number and HMAC of the last event this
machine appended, sealed with the key.  Start-up refuses a journal that no longer holds
the anchored event, and ``verify`` reports it.

Every append moves the anchor after its transaction committed, so the anchor is never
ahead of the journal (a crash in between leaves it one event behind).  The file has two
fixed-size slots written in turn with one ``pwrite`` each, every slot sealed: a torn
write spoils one slot and the other still holds the previous event.  (Replacing the
file by rename cost about 2 ms an update on ext4, which flushes a file renamed over
another.)
Several worker processes on one machine share the file: an ``flock`` on it serialises
the writers, and a writer that finds the anchor already further leaves it.  Each node of
a PostgreSQL cluster keeps its own anchor: how far the journal was when that node last
appended.
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
from camrelay.store.private import FILE_MODE

ANCHOR_FILE = "audit.anchor"
SLOT = 256  # bytes per slot; the file holds two
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
        self._key = key

    def _seal(self, seq: int, mac: str) -> str:
        return hmac.new(self._key, f"anchor|{seq}|{mac}".encode("ascii"),
                        hashlib.sha256).hexdigest()

    def _slot(self, seq: int, mac: str) -> bytes:
        body = json.dumps({"seq": seq, "mac": mac, "seal": self._seal(seq, mac)}).encode()
        if len(body) >= SLOT:
            raise ValueError("an anchor record does not fit its slot")
        return body.ljust(SLOT - 1) + b"\n"

    def _points(self, raw: bytes) -> list[AnchorPoint | None]:
        """Each slot's point, None where the seal does not hold."""
        points: list[AnchorPoint | None] = []
        for i in range(0, len(raw), SLOT):
            points.append(None)
            try:
                data = json.loads(raw[i:i + SLOT])
            except ValueError:
                continue
            if not isinstance(data, dict):
                continue
            seq, mac, seal = data.get("seq"), data.get("mac"), data.get("seal")
            if isinstance(seq, int) and isinstance(mac, str) and isinstance(seal, str) \
                    and mac.isascii() and hmac.compare_digest(self._seal(seq, mac), seal):
                points[-1] = AnchorPoint(seq, mac)
        return points

    def read(self) -> AnchorPoint | None:
        """The anchored point (None: no anchor yet); ``JournalCut`` if the file was edited
        or was sealed with another audit key."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        if not raw.strip():
            return None  # created, never written (a crash at the first anchoring)
        points = [p for p in self._points(raw) if p is not None]
        if not points:
            raise JournalCut(
                f"the journal anchor {self.path} does not match its seal: it was edited, or "
                "the audit key (audit.key, audit_key) is not the one the journal was written "
                f"with; with the right key, or after checking, run `{RECOVERY}`")
        return max(points, key=lambda p: p.seq)

    @contextmanager
    def _locked(self) -> Iterator[int]:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # released by the close
            yield fd
        finally:
            os.close(fd)

    def advance(self, seq: int, mac: str) -> None:
        """Anchor event ``seq`` unless another writer already anchored a later one."""
        with self._locked() as fd:
            slots = (self._points(os.pread(fd, 2 * SLOT, 0)) + [None, None])[:2]
            seqs = [-1 if p is None else p.seq for p in slots]
            if max(seqs) >= seq:
                return
            # over the older slot: a torn write leaves the newer one whole
            os.pwrite(fd, self._slot(seq, mac), (0 if seqs[0] <= seqs[1] else 1) * SLOT)

    def reset(self, seq: int, mac: str) -> None:
        """Anchor event ``seq`` whatever was anchored before (adoption, recovery), in both
        slots, and make it durable."""
        with self._locked() as fd:
            os.pwrite(fd, self._slot(seq, mac) * 2, 0)
            os.ftruncate(fd, 2 * SLOT)
            os.fsync(fd)
        dfd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def close(self) -> None:
        """Nothing is held open between appends (kept for the journal's close)."""
