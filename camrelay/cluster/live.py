"""Live state across the nodes of a cluster: events and revocations over one Redis pub/sub
channel, ``camrelay:events``.

Every event published on this process's bus (:mod:`camrelay.events`) goes out as one JSON
message ``{"o": origin, "e": event}``, where the origin is ``<node>:<process>``; every
message of another origin is delivered to this process's bus, so a console's live channel
on any node hears camera status, alarms, grants, emergencies, wall screens and
revocations of every node (worker processes of one node included).  A revocation
(:meth:`camrelay.access.views.Views.revoked`: grant, emergency, token, user, password,
camera removed) goes out as ``{"o": origin, "sweep": 1}``: the receiving process
re-checks its live views against the store at once, so a viewer on any node is cut
within a second.

Sending never blocks the publisher: messages wait in a bounded queue and are sent in
pipelined batches; while Redis does not answer they are dropped (counted, logged once).
The subscriber reconnects with backoff (0.2 s doubling to 2 s), subscribes again and
then re-checks the views once, for the revocations it could not hear.  Without Redis the
views' watcher still re-reads the store every ``access.watch_seconds``: the fallback that
cuts revoked views on every node.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING, Any

from camrelay.cluster.redis_link import REDIS_ERRORS
from camrelay.events import Event, EventBus
from camrelay.tasks import stop_task

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from camrelay.access.views import Views

log = logging.getLogger(__name__)

CHANNEL = "camrelay:events"
QUEUE_SIZE = 1000  # messages waiting to be sent; more are dropped
BATCH = 100
BACKOFF = (0.2, 2.0)  # first and longest wait before subscribing again


def event_wire(event: Event) -> dict[str, Any]:
    """``event`` as JSON-serialisable data (its audience sets as sorted lists)."""

    def listed(values: frozenset[Any] | None) -> list[Any] | None:
        return None if values is None else sorted(values)

    return {"type": event.type, "data": event.data, "camera_id": event.camera_id,
            "user_id": event.user_id, "token_id": event.token_id,
            "roles": listed(event.roles), "user_ids": listed(event.user_ids),
            "unit_ids": listed(event.unit_ids)}


def event_from_wire(raw: Any) -> Event:
    """The :class:`Event` of :func:`event_wire`'s data; ValueError if it is not one."""
    if not isinstance(raw, dict) or not isinstance(raw.get("type"), str) \
            or not isinstance(raw.get("data"), dict):
        raise ValueError("not an event")  # noqa: TRY004 - malformed input, one error kind

    def number(name: str) -> int | None:
        value = raw.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise ValueError(f"{name} is not an integer")
        return value

    def numbers(name: str) -> frozenset[int] | None:
        values = raw.get(name)
        if values is None:
            return None
        if not isinstance(values, list) or not all(
                isinstance(v, int) and not isinstance(v, bool) for v in values):
            raise ValueError(f"{name} is not a list of integers")
        return frozenset(values)

    roles = raw.get("roles")
    if roles is not None and (not isinstance(roles, list)
                              or not all(isinstance(r, str) for r in roles)):
        raise ValueError("roles is not a list of names")
    return Event(raw["type"], raw["data"], camera_id=number("camera_id"),
                 user_id=number("user_id"), token_id=number("token_id"),
                 roles=None if roles is None else frozenset(roles),
                 user_ids=numbers("user_ids"), unit_ids=numbers("unit_ids"))


class LiveLink:
    """This process's end of the events channel; see the module's doc."""

    def __init__(self, redis: Redis, origin: str, bus: EventBus, views: Views | None,
                 *, timeout: float) -> None:
        self.redis = redis
        self.origin = origin
        self.bus = bus
        self.views = views
        self.timeout = timeout
        self.dropped = 0  # messages not sent (Redis unreachable, or the queue full)
        self.received = 0
        self.subscribed = asyncio.Event()  # set while the channel is subscribed
        self._queue: asyncio.Queue[str] = asyncio.Queue(QUEUE_SIZE)
        self._failing = False
        self._tasks: list[asyncio.Task[None]] = []
        self._sweeper: asyncio.Task[None] | None = None
        self._sweep_again = False

    def attach(self) -> None:
        """Send this process's events and revocations from now on."""
        self.bus.forward = self.send_event
        if self.views is not None:
            self.views.revocation_listeners.append(self.send_revocation)

    # ---- sending ----------------------------------------------------------------------

    def send_event(self, event: Event) -> None:
        self._offer(json.dumps({"o": self.origin, "e": event_wire(event)},
                               ensure_ascii=False, separators=(",", ":")))

    def send_revocation(self) -> None:
        self._offer(json.dumps({"o": self.origin, "sweep": 1}))

    def _offer(self, message: str) -> None:
        try:
            self._queue.put_nowait(message)
        except asyncio.QueueFull:
            self._dropped(1, "the queue is full")

    def _dropped(self, count: int, why: str) -> None:
        self.dropped += count
        if not self._failing:
            self._failing = True
            log.warning("cluster: events are not reaching the other nodes (%s); they re-read "
                        "the store every access.watch_seconds meanwhile", why)

    async def _send(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                async with asyncio.timeout(2 * self.timeout):
                    pipe = self.redis.pipeline(transaction=False)
                    for message in batch:
                        pipe.publish(CHANNEL, message)
                    await pipe.execute()
            except REDIS_ERRORS as err:
                self._dropped(len(batch), f"Redis: {type(err).__name__}")
                continue
            if self._failing:
                self._failing = False
                log.info("cluster: events reach the other nodes again (%d dropped so far)",
                         self.dropped)

    # ---- receiving --------------------------------------------------------------------

    async def _listen(self) -> None:
        delay, first = BACKOFF[0], True
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                async with asyncio.timeout(2 * self.timeout):
                    await pubsub.subscribe(CHANNEL)
                self.subscribed.set()
                if not first:
                    log.info("cluster: subscribed to %s again", CHANNEL)
                    self._sweep_soon()  # the revocations sent while we could not hear
                first, delay = False, BACKOFF[0]
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self.receive(message.get("data"))
            except REDIS_ERRORS as err:
                if self.subscribed.is_set():
                    log.warning("cluster: events channel lost (%s); subscribing again",
                                type(err).__name__)
                first = False
            finally:
                self.subscribed.clear()
                try:
                    await asyncio.wait_for(pubsub.aclose(), self.timeout)
                except (TimeoutError, *REDIS_ERRORS):
                    pass
            await asyncio.sleep(delay)  # backoff before the next attempt, not a signal
            delay = min(2 * delay, BACKOFF[1])

    def receive(self, data: Any) -> None:
        """One message of the channel (ours are skipped: the bus has had them)."""
        try:
            message = json.loads(data)
            origin = message["o"]
            if origin == self.origin:
                return
            self.received += 1
            if message.get("sweep"):
                self._sweep_soon()
                return
            event = event_from_wire(message["e"])
        except (ValueError, KeyError, TypeError) as err:
            log.warning("cluster: ignoring a malformed message on %s: %s", CHANNEL, err)
            return
        self.bus.deliver(event)

    def _sweep_soon(self) -> None:
        if self.views is None:
            return
        if self._sweeper is not None and not self._sweeper.done():
            self._sweep_again = True  # one more pass once the running one ends
            return
        self._sweeper = asyncio.create_task(self._sweep(self.views), name="cluster-sweep")

    async def _sweep(self, views: Views) -> None:
        while True:
            self._sweep_again = False
            try:
                cut = await views.sweep()
            except asyncio.CancelledError:
                raise
            except Exception as err:  # noqa: BLE001 - the store may be down: the watcher retries
                log.warning("cluster: re-checking the views after a revocation failed: %s: %s",
                            type(err).__name__, err)
            else:
                if cut:
                    log.info("cluster: %d view(s) cut after a revocation on another node", cut)
            if not self._sweep_again:
                return

    # ---- life -------------------------------------------------------------------------

    def start(self) -> None:
        self.attach()
        self._tasks = [asyncio.create_task(self._send(), name="cluster-events-send"),
                       asyncio.create_task(self._listen(), name="cluster-events-listen")]

    async def stop(self) -> None:
        self.bus.forward = None
        for task in [*self._tasks, self._sweeper]:
            await stop_task(task)
        self._tasks, self._sweeper = [], None
