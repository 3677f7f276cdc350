"""The live channel's bus: a small in-process publish/subscribe of events.

Producers (the relay's streams, the catalogue, the access gate, the auth routes) call
:meth:`EventBus.publish`, which never blocks and never awaits: each subscriber (one
``GET /api/v1/events`` per console page, :mod:`camrelay.web.events`) has a bounded
queue, and a subscriber whose queue is full is dropped -- its stream ends and the page
reconnects and reloads what it shows -- rather than buffered without end (a slow reader
must not grow memory).  Later features (alarms, wall screens, the cluster) publish into
the same bus; with ``redis_url`` every event also goes to every other node's bus
(:mod:`camrelay.cluster.live`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from camrelay.relay.media import StreamKey

log = logging.getLogger(__name__)

KEEPALIVE_SECONDS = 15.0
QUEUE_SIZE = 256

@dataclass(frozen=True, slots=True)
class Event:
    """One message on the bus; ``data`` must be JSON-serialisable."""

    type: str
    data: dict[str, Any]
    camera_id: int | None = None  # about this camera: for those who may list it
    user_id: int | None = None  # only for this user's channels
    token_id: int | None = None  # only for channels opened with this token
    # an audience: when any of these is given, only channels of these roles, users or
    # units (the user's own unit) get the event
    roles: frozenset[str] | None = None
    user_ids: frozenset[int] | None = None
    unit_ids: frozenset[int] | None = None

    def reaches(self, sub: Subscriber) -> bool:
        if self.user_id is not None and sub.user_id != self.user_id:
            return False
        if self.token_id is not None and sub.token_id != self.token_id:
            return False
        if self.roles is None and self.user_ids is None and self.unit_ids is None:
            return True
        return (sub.role in (self.roles or ()) or sub.user_id in (self.user_ids or ())
                or sub.unit_id in (self.unit_ids or ()))


@dataclass(eq=False)
class Subscriber:
    user_id: int
    token_id: int
    role: str = ""
    unit_id: int | None = None
    queue: asyncio.Queue[Event | None] = field(
        default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    dropped: bool = False

    def offer(self, event: Event | None) -> bool:
        """Queue ``event``; False (and the subscriber is dropped) when it is full."""
        if self.dropped:
            return False
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped = True
            # make room for the end marker so the reader wakes up and stops
            self.queue.get_nowait()
            self.queue.put_nowait(None)
            return False
        return True


class EventBus:
    def __init__(self) -> None:
        self._subscribers: set[Subscriber] = set()
        self.dropped_total = 0
        self.keepalive = KEEPALIVE_SECONDS
        self.closed = False
        # a cluster (camrelay.cluster.live) sends this process's events on to the other
        # processes and nodes; it must not block either
        self.forward: Callable[[Event], None] | None = None

    def __len__(self) -> int:
        return len(self._subscribers)

    @contextmanager
    def subscribe(self, user_id: int, token_id: int, *, role: str = "",
                  unit_id: int | None = None) -> Iterator[Subscriber]:
        sub = Subscriber(user_id, token_id, role, unit_id)
        if self.closed:  # the server is stopping: the stream ends at once
            sub.offer(None)
        else:
            self._subscribers.add(sub)
        try:
            yield sub
        finally:
            self._subscribers.discard(sub)

    def publish(self, event: Event) -> None:
        """Hand ``event`` to every matching subscriber now, and to the cluster (never
        blocks)."""
        self.deliver(event)
        if self.forward is not None:
            self.forward(event)

    def deliver(self, event: Event) -> None:
        """Hand ``event`` to this process's subscribers only (an event from another node)."""
        for sub in list(self._subscribers):
            if not event.reaches(sub):
                continue
            if not sub.offer(event):
                self._subscribers.discard(sub)
                self.dropped_total += 1
                log.warning("live channel of user %d dropped: its reader is too slow "
                            "(%d events queued)", sub.user_id, QUEUE_SIZE)

    def close(self) -> None:
        """End every stream (server shutdown)."""
        self.closed = True
        for sub in list(self._subscribers):
            sub.offer(None)
        self._subscribers.clear()


_STREAM_STATES = {"connecting": "connecting", "live": "live", "retrying": "reconnecting",
                  "stopped": "idle"}


def stream_state_publisher(bus: EventBus) -> Callable[[StreamKey, str, str | None], None]:
    """A hub listener that publishes ``stream.state`` events."""

    def publish(key: StreamKey, state: str, reason: str | None) -> None:
        bus.publish(Event("stream.state", {
            "camera_id": key.camera_id, "stream": key.variant, "transcoded": key.transcode,
            "state": _STREAM_STATES.get(state, state), "reason": reason},
            camera_id=key.camera_id))

    return publish
