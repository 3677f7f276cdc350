"""ONVIF events through a PullPoint subscription (ONVIF Event Service, §5.4 real-time
pull-point notification interface), and what they say about the camera.

:class:`PullPoint` is one subscription on one :class:`OnvifConnection`:
``CreatePullPointSubscription`` with an initial termination time, ``PullMessages``
long polls (a timeout and a message limit), ``Renew`` when 80 % of the granted time has
passed (a poll never waits past that), ``Unsubscribe`` when it is closed.  A device
whose answers show that it ignores relative times (its termination time is far from
what was asked) is renewed with absolute times on its own clock.

:func:`follow` keeps a subscription up for as long as it runs: a fault from any call
(the device forgot the subscription, restarted, answered garbage), a timeout or a lost
connection ends the subscription; the failure is handed to ``on_fault`` and a new
subscription is made after a backoff (``retry_min`` doubling up to ``retry_max``; back
to ``retry_min`` once a subscription works).

:func:`classify` maps a notification to an alarm condition: motion
(``tns1:VideoSource/MotionAlarm`` ``State``, ``tns1:RuleEngine/CellMotionDetector/Motion``
``IsMotion``), tamper (``tns1:VideoSource/GlobalSceneChange/*``,
``tns1:VideoSource/ImageTooDark|Bright|Blurry/*``, ``tns1:RuleEngine/TamperDetector/Tamper``)
and video loss (``tns1:VideoSource/SignalLoss``, vendors' ``VideoLoss``), each true
(raise) or false (clear).  No zeep object leaves this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from camrelay.onvif.device import (
    DEFAULT_TIMEOUT,
    NS_EVENTS,
    NS_PULLPOINT,
    NS_SUBSCRIPTION_MANAGER,
    OnvifConnection,
)
from camrelay.onvif.errors import OnvifError, OnvifUnsupported
from camrelay.onvif.models import DeviceTarget

_LOGGER = logging.getLogger(__name__)

RENEW_AT = 0.8  # share of the granted time after which a subscription is renewed
UNSUBSCRIBE_TIMEOUT = 3.0


@dataclass(frozen=True, slots=True)
class OnvifEvent:
    """One notification: its topic, ``Initialized``/``Changed``/``Deleted``, the time the
    device gave it, and the ``Source`` and ``Data`` simple items."""

    topic: str
    operation: str
    utc_time: str | None
    source: tuple[tuple[str, str], ...]
    data: tuple[tuple[str, str], ...]

    def as_dict(self) -> dict[str, Any]:
        return {"topic": self.topic, "operation": self.operation, "utc_time": self.utc_time,
                "source": dict(self.source), "data": dict(self.data)}


@dataclass(frozen=True, slots=True)
class Condition:
    """What an event says: alarm ``kind`` active or not, for one source (``key``)."""

    kind: str
    key: str
    active: bool


@dataclass(frozen=True, slots=True)
class PullSettings:
    termination: float = 600.0  # seconds asked for at subscribing and at each renewal
    pull_timeout: float = 20.0  # longest PullMessages wait
    message_limit: int = 100  # notifications per PullMessages
    retry_min: float = 1.0  # first wait after a failure, doubled up to retry_max
    retry_max: float = 300.0
    timeout: float = DEFAULT_TIMEOUT  # each call, beyond a poll's own wait


# --- classification ---------------------------------------------------------------------

_VIDEO_LOSS = ("signalloss", "videoloss", "videosignalloss")
_TAMPER = ("globalscenechange", "imagetoodark", "imagetoobright", "imagetooblurry",
           "tamper", "tamperdetector")
_MOTION = ("motionalarm", "cellmotiondetector", "motiondetector", "motion")
_STATE_ITEMS = ("State", "IsMotion", "IsTamper", "IsSignalLoss", "IsVideoLoss", "Value",
                "Active", "IsInside")
_TRUE = {"true", "1", "on", "active", "yes"}
_FALSE = {"false", "0", "off", "inactive", "no"}


def _segments(topic: str) -> list[str]:
    """``tns1:VideoSource/MotionAlarm`` -> ``["videosource", "motionalarm"]``."""
    return [part.rsplit(":", 1)[-1].lower() for part in topic.strip().split("/") if part]


def classify(event: OnvifEvent) -> Condition | None:
    """The alarm condition an event sets or ends, or None (another topic, no state)."""
    segments = _segments(event.topic)
    if any(s in _VIDEO_LOSS for s in segments):
        kind = "onvif.video_loss"
    elif any(s in _TAMPER for s in segments):
        kind = "onvif.tamper"
    elif any(s in _MOTION for s in segments):
        kind = "onvif.motion"
    else:
        return None
    data = dict(event.data)
    state = next((data[name] for name in _STATE_ITEMS if name in data), None)
    if state is None and len(data) == 1:
        state = next(iter(data.values()))
    if state is None or state.strip().lower() not in _TRUE | _FALSE:
        return None
    active = state.strip().lower() in _TRUE
    if event.operation == "Deleted":
        active = False
    key = "/".join(segments) + "|" + ",".join(f"{k}={v}" for k, v in sorted(event.source))
    return Condition(kind, key, active)


# --- parsing PullMessages answers ---------------------------------------------------------


def _items(holder: Any) -> tuple[tuple[str, str], ...]:
    if holder is None:
        return ()
    out = []
    for item in getattr(holder, "SimpleItem", None) or []:
        name = getattr(item, "Name", None)
        if name is not None:
            out.append((str(name), str(getattr(item, "Value", "") or "")))
    return tuple(out)


def _element_items(holder: Any) -> tuple[tuple[str, str], ...]:
    if holder is None:
        return ()
    return tuple((str(e.get("Name")), str(e.get("Value") or "")) for e in holder
                 if str(e.tag).endswith("SimpleItem") and e.get("Name") is not None)


def parse_message(raw: Any) -> OnvifEvent | None:
    """One ``wsnt:NotificationMessage`` (zeep object) as an event; None if it has none."""
    topic_holder = getattr(raw, "Topic", None)
    topic = getattr(topic_holder, "_value_1", None) if topic_holder is not None else None
    message_holder = getattr(raw, "Message", None)
    message = getattr(message_holder, "_value_1", None) if message_holder is not None else None
    if not topic or message is None:
        return None
    if hasattr(message, "tag"):  # an element zeep did not map: read it as XML
        children = {str(c.tag).rsplit("}", 1)[-1]: c for c in message}
        utc = message.get("UtcTime")
        return OnvifEvent(str(topic).strip(), str(message.get("PropertyOperation") or ""),
                          str(utc) if utc else None,
                          _element_items(children.get("Source")),
                          _element_items(children.get("Data")))
    utc_time = getattr(message, "UtcTime", None)
    if isinstance(utc_time, dt.datetime):
        utc_text: str | None = utc_time.isoformat().replace("+00:00", "Z")
    else:
        utc_text = str(utc_time) if utc_time else None
    return OnvifEvent(str(topic).strip(), str(getattr(message, "PropertyOperation", "") or ""),
                      utc_text, _items(getattr(message, "Source", None)),
                      _items(getattr(message, "Data", None)))


def _address(reference: Any) -> str | None:
    address = getattr(reference, "Address", None)
    value = getattr(address, "_value_1", address)
    return str(value).strip() if value else None


# --- one subscription ------------------------------------------------------------------------


class PullPoint:
    """A PullPoint subscription; ``async with PullPoint.open(target, settings) as pp:``
    then ``await pp.pull()`` (renewing when due).  Closing it unsubscribes."""

    def __init__(self, conn: OnvifConnection, settings: PullSettings) -> None:
        self._conn = conn
        self.settings = settings
        self.renew_at = 0.0  # loop time
        self.renewals = 0
        self._absolute = False  # the device ignores relative termination times

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, target: DeviceTarget, settings: PullSettings
                   ) -> AsyncIterator[PullPoint]:
        async with OnvifConnection.open(target, timeout=settings.timeout) as conn:
            if not conn.has_service(NS_EVENTS):
                raise OnvifUnsupported(f"The camera at {target.address} has no events "
                                       "service.", address=target.address)
            pullpoint = cls(conn, settings)
            await pullpoint._subscribe()
            try:
                yield pullpoint
            finally:
                await pullpoint._unsubscribe()

    def _termination(self) -> str:
        seconds = max(1, round(self.settings.termination))
        if not self._absolute:
            return f"PT{seconds}S"
        when = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds + self._conn.clock_skew))
        return when.isoformat(timespec="seconds").replace("+00:00", "Z")

    def _granted(self, answer: Any) -> None:
        """Schedule the renewal from the device's CurrentTime and TerminationTime."""
        current = getattr(answer, "CurrentTime", None)
        termination = getattr(answer, "TerminationTime", None)
        asked = self.settings.termination
        granted = asked
        if isinstance(current, dt.datetime) and isinstance(termination, dt.datetime) and (
                (current.tzinfo is None) == (termination.tzinfo is None)):
            granted = (termination - current).total_seconds()
            if not self._absolute and abs(granted) < asked / 2:
                _LOGGER.info("[onvif %s] the camera ignores relative termination times; "
                             "renewing with absolute ones", self._conn.target.address)
                self._absolute = True
            granted = max(1.0, granted)
        self.renew_at = asyncio.get_running_loop().time() + granted * RENEW_AT

    async def _subscribe(self) -> None:
        answer = await self._conn.call(
            "CreatePullPointSubscription", "CreatePullPointSubscription", NS_EVENTS,
            {"InitialTerminationTime": self._termination()})
        address = _address(getattr(answer, "SubscriptionReference", None))
        if not address:
            raise OnvifError(f"The camera at {self._conn.target.address} gave no "
                             "subscription address.", address=self._conn.target.address)
        self._conn.pin_subscription(address)
        self._granted(answer)
        if self._absolute:  # the first answer showed it: make the granted time right now
            await self.renew()

    async def renew(self) -> None:
        answer = await self._conn.call("Renew", "Renew", NS_SUBSCRIPTION_MANAGER,
                                       {"TerminationTime": self._termination()})
        self.renewals += 1
        self._granted(answer)

    async def pull(self) -> list[OnvifEvent]:
        """Renew if due, then wait up to ``pull_timeout`` (never past the next renewal)
        for notifications."""
        remaining = self.renew_at - asyncio.get_running_loop().time()
        if remaining < 1.0:
            await self.renew()
            remaining = self.renew_at - asyncio.get_running_loop().time()
        wait = max(1, int(min(self.settings.pull_timeout, remaining)))
        answer = await self._conn.call(
            "PullMessages", "PullMessages", NS_PULLPOINT,
            {"Timeout": f"PT{wait}S", "MessageLimit": self.settings.message_limit},
            timeout=wait + self.settings.timeout)
        events = []
        for raw in getattr(answer, "NotificationMessage", None) or []:
            event = parse_message(raw)
            if event is not None:
                events.append(event)
        return events

    async def _unsubscribe(self) -> None:
        """Best effort: the device forgets the subscription at its termination anyway."""
        try:
            await self._conn.call("Unsubscribe", "Unsubscribe", NS_SUBSCRIPTION_MANAGER,
                                  timeout=UNSUBSCRIBE_TIMEOUT)
        except OnvifError as err:
            _LOGGER.debug("[onvif %s] unsubscribe: %s", self._conn.target.address, err)


# --- kept up ---------------------------------------------------------------------------------

Handler = Callable[[list[OnvifEvent]], Awaitable[object]]


async def follow(target: DeviceTarget, handle: Handler, settings: PullSettings, *,
                 on_fault: Callable[[OnvifError], None],
                 on_subscribed: Callable[[], None] | None = None,
                 limit: asyncio.Semaphore | None = None) -> None:
    """Keep a subscription to ``target`` and hand each batch of events to ``handle``,
    until cancelled.  ``limit``: held while connecting and subscribing."""
    backoff = settings.retry_min
    while True:
        try:
            async with contextlib.AsyncExitStack() as stack:
                if limit is not None:
                    async with limit:
                        pullpoint = await stack.enter_async_context(
                            PullPoint.open(target, settings))
                else:
                    pullpoint = await stack.enter_async_context(
                        PullPoint.open(target, settings))
                if on_subscribed is not None:
                    on_subscribed()
                while True:
                    events = await pullpoint.pull()
                    backoff = settings.retry_min
                    if events:
                        await handle(events)
        except OnvifError as err:
            on_fault(err)
        await asyncio.sleep(backoff)
        backoff = min(settings.retry_max, backoff * 2)
