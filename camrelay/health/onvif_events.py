"""ONVIF events of the catalogue's cameras as alarms: one PullPoint subscription per camera.

The supervisor reads the catalogue every ``health.onvif_reconcile_seconds``: each enabled
camera (inside its validity window) with an ONVIF address that this process owns gets
one subscription task (:func:`camrelay.onvif.events.follow`); a camera removed, disabled
or whose address or credentials changed loses its task (and a changed one gets a new
one).  At most ``health.onvif_concurrency`` subscriptions are being set up at once.

A notification that :func:`camrelay.onvif.events.classify` recognises sets or ends a
condition (motion, tamper, video loss) of one of the camera's sources; the camera's
``onvif.*`` alarms are then made the kinds with an active source
(``Alarms.update(..., prefix="onvif.")``), the alarm's value the latest event (topic,
source, data).  A repeated "true" merges into the open alarm.  A subscription that fails
(fault, garbage, timeout, lost connection, device restarted) is logged and recorded in
:attr:`OnvifEventSupervisor.states` (reason, message, count) and made again after a
backoff; the camera's alarms stay as they were until the device says otherwise.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from camrelay.errors import CamrelayError
from camrelay.fields import utcnow
from camrelay.health.alarms import Alarms
from camrelay.onvif.errors import OnvifError
from camrelay.onvif.events import OnvifEvent, PullSettings, classify, follow
from camrelay.onvif.models import DeviceTarget
from camrelay.settings import HealthSettings
from camrelay.store import Store, schema
from camrelay.tasks import stop_task

log = logging.getLogger(__name__)

TargetFor = Callable[[int], Awaitable[DeviceTarget]]  # camera id -> address and credentials


@dataclass
class SubscriptionState:
    """How one camera's subscription is doing (for operators and tests)."""

    state: str = "subscribing"  # "subscribing", "subscribed", "retrying"
    since: datetime = field(default_factory=utcnow)
    subscriptions: int = 0  # subscriptions made
    faults: int = 0  # failures since the task started
    reason: str | None = None  # the last failure's reason ("timeout", "not_onvif", ...)
    detail: str | None = None  # its message (no password, no SOAP body)
    events: int = 0  # notifications received


@dataclass
class _Follower:
    fingerprint: tuple[Any, ...]
    task: asyncio.Task[None]
    sources: dict[str, tuple[str, bool, dict[str, Any]]] = field(default_factory=dict)


StateListener = Callable[[int, "SubscriptionState"], None]


def pull_settings(settings: HealthSettings) -> PullSettings:
    return PullSettings(termination=settings.onvif_termination_seconds,
                        pull_timeout=settings.onvif_pull_timeout,
                        message_limit=settings.onvif_message_limit,
                        retry_min=settings.onvif_retry_min_seconds,
                        retry_max=settings.onvif_retry_max_seconds)


class OnvifEventSupervisor:
    def __init__(self, store: Store, alarms: Alarms, target_for: TargetFor,
                 settings: HealthSettings, owns: Callable[[int], bool] | None = None) -> None:
        self.store = store
        self.alarms = alarms
        self.target_for = target_for
        self.settings = settings
        self.pull = pull_settings(settings)
        self.owns = owns  # None: every camera (one process)
        self.states: dict[int, SubscriptionState] = {}
        self.listeners: list[StateListener] = []  # told of every state change
        self._followers: dict[int, _Follower] = {}
        self._limit = asyncio.Semaphore(settings.onvif_concurrency)
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Read the catalogue now (a camera was added, changed or removed)."""
        self._wake.set()

    async def _wanted(self) -> dict[int, tuple[Any, ...]]:
        cams = schema.cameras
        now = utcnow()
        async with self.store.connect() as conn:
            rows = (await conn.execute(select(
                cams.c.id, cams.c.onvif_url, cams.c.username, cams.c.password_enc,
                cams.c.valid_from, cams.c.valid_until).where(
                    cams.c.enabled.is_(True), cams.c.onvif_url.is_not(None),
                    cams.c.onvif_url != ""))).all()
        return {r.id: (r.onvif_url, r.username, r.password_enc) for r in rows
                if (r.valid_from is None or r.valid_from <= now)
                and (r.valid_until is None or now < r.valid_until)
                and (self.owns is None or self.owns(r.id))}

    async def reconcile(self) -> None:
        """Start, stop or restart subscriptions to match the catalogue."""
        wanted = await self._wanted()
        for camera_id, follower in list(self._followers.items()):
            if wanted.get(camera_id) != follower.fingerprint:
                del self._followers[camera_id]
                self.states.pop(camera_id, None)
                await stop_task(follower.task)
        for camera_id, fingerprint in wanted.items():
            if camera_id not in self._followers:
                self.states[camera_id] = SubscriptionState()
                task = asyncio.create_task(self._follow(camera_id),
                                           name=f"onvif events {camera_id}")
                self._followers[camera_id] = _Follower(fingerprint, task)

    async def _follow(self, camera_id: int) -> None:
        state = self.states[camera_id]

        def subscribed() -> None:
            state.state, state.since = "subscribed", utcnow()
            state.subscriptions += 1
            log.info("[camera %s] ONVIF events subscribed", camera_id)
            self._tell(camera_id, state)

        def record(reason: str, detail: str) -> None:
            state.state, state.since = "retrying", utcnow()
            state.faults += 1
            state.reason, state.detail = reason, detail
            log.warning("[camera %s] ONVIF events: %s (%s); subscribing again", camera_id,
                        detail, reason)
            self._tell(camera_id, state)

        def fault(err: OnvifError) -> None:
            record(err.reason, err.detail)

        async def handle(events: list[OnvifEvent]) -> None:
            state.events += len(events)
            await self._observe(camera_id, events)

        while True:
            try:
                target = await self.target_for(camera_id)
                await follow(target, handle, self.pull, on_fault=fault,
                             on_subscribed=subscribed, limit=self._limit)
            except asyncio.CancelledError:
                raise
            except CamrelayError as err:  # no usable address: the next reconcile may fix it
                record("config", err.detail)
            except Exception as exc:  # a bug or the store: logged, retried, never fatal
                log.exception("[camera %s] ONVIF events failed", camera_id)
                record("error", repr(exc)[:200])
            await asyncio.sleep(self.pull.retry_max)

    def _tell(self, camera_id: int, state: SubscriptionState) -> None:
        for listener in self.listeners:
            try:
                listener(camera_id, state)
            except Exception:  # one listener's bug must not stop the subscription
                log.exception("ONVIF events listener failed")

    async def _observe(self, camera_id: int, events: list[OnvifEvent]) -> None:
        follower = self._followers.get(camera_id)
        if follower is None:
            return
        sources = follower.sources
        before = {kind for kind, active, _ in sources.values() if active}
        raised = False
        for event in events:
            condition = classify(event)
            if condition is None:
                continue
            log.debug("[camera %s] ONVIF %s %s", camera_id, event.topic, condition.active)
            sources[condition.key] = (condition.kind, condition.active, event.as_dict())
            raised |= condition.active
        active: dict[str, tuple[str | None, dict[str, Any]]] = {}
        for kind, is_active, value in sources.values():
            if is_active:
                active[kind] = (value["topic"], value)
        if set(active) != before or raised:
            await self.alarms.update(camera_id, active, prefix="onvif.")

    async def run(self) -> None:
        """Reconcile now and every ``onvif_reconcile_seconds`` (or when woken) until
        cancelled; then stop every subscription (each unsubscribes)."""
        try:
            while True:
                try:
                    await self.reconcile()
                except asyncio.CancelledError:
                    raise
                except Exception:  # the store failed: the next round tries again
                    log.exception("ONVIF events: cannot read the catalogue")
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(),
                                           self.settings.onvif_reconcile_seconds)
                except TimeoutError:
                    pass
        finally:
            followers, self._followers = self._followers, {}
            for follower in followers.values():
                await stop_task(follower.task)
