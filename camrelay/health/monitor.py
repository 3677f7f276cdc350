"""The health scheduler: every enabled camera checked once per period, spread over it.

Per period the cameras this process owns are listed and their checks started evenly
``period / n`` apart, at most ``concurrency`` at once (10 000 cameras never open 10 000
connections at once, and each camera is opened at most once a period).  A check:

- a camera being streamed (a main or sub stream in the hub) is judged from that stream:
  retrying is "offline", live is judged on the hub's cached keyframe -- no second
  connection to the camera;
- another is opened briefly (``camrelay.relay.probe.first_keyframe``) until its first
  keyframe, within ``probe_timeout``.

The keyframe is decoded, scaled down and diagnosed in the probe process
(:mod:`camrelay.health.probe_process`), which also opens the cameras nobody watches: that
blocking work never shares the relay's interpreter lock or event loop.  A finding makes
the camera "fault" with the finding as reason.  A check that fails in any way is
recorded as offline or fault with its reason; it never ends the scheduler.

A camera with an ONVIF address is also asked for its device status while its stream is
judged, in the same concurrency slot (``health.onvif_status``;
:mod:`camrelay.health.onvif_status` says how the answer sharpens the verdict); one the
period's listing shows without an ONVIF address is not looked up for it.

The picture checks (:mod:`camrelay.health.diagnosis` with numpy, and
:mod:`camrelay.health.picture`) load only in the probe process, never in the server's
(about 18 MB of RSS, measured in BENCHMARKS.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from sqlalchemy import select

from camrelay.errors import CamrelayError, SourceUnavailable
from camrelay.fields import utcnow
from camrelay.health.history import HealthHistory, Verdict
from camrelay.health.onvif_status import DeviceReading, sharpen
from camrelay.health.probe_process import Judged, ProbeProcess
from camrelay.health.thumbnails import Thumbnail, Thumbnails
from camrelay.onvif.models import DeviceTarget
from camrelay.onvif.status import DeviceStatus, device_status
from camrelay.relay.hub import Hub
from camrelay.relay.media import WHIP_SCHEME, StreamKey, Variant
from camrelay.relay.stream import SourceSpec
from camrelay.settings import HealthSettings
from camrelay.store import Store, schema
from camrelay.tasks import stop_task

log = logging.getLogger(__name__)

Resolver = Callable[[StreamKey], Awaitable[SourceSpec]]
StatusListener = Callable[[int, Verdict], None]
Observer = Callable[[int, Verdict], Awaitable[object]]
TargetFor = Callable[[int], Awaitable[DeviceTarget]]  # camera id -> ONVIF address, creds

_OFFLINE_REASONS = {"unreachable", "timeout"}


class HealthMonitor:
    def __init__(self, store: Store, hub: Hub, resolve: Resolver, settings: HealthSettings,
                 owns: Callable[[int], bool] | None = None,
                 target_for: TargetFor | None = None) -> None:
        self.store = store
        self.history = HealthHistory(store)
        self.hub = hub
        self.resolve = resolve
        self.settings = settings
        self.owns = owns  # None: every camera (one process)
        self.probes = ProbeProcess(settings)  # started by the first check
        self.listeners: list[StatusListener] = []  # told of status changes
        self.observers: list[Observer] = []  # awaited with every recorded verdict (alarms)
        self.after_period: list[Callable[[], Awaitable[object]]] = []  # e.g. pruning
        self._limit = asyncio.Semaphore(settings.concurrency)
        self.checks = 0  # completed checks (tests, metrics)
        self._last_seq: dict[int, int] = {}  # the hub keyframe each camera was judged on
        self.thumbnails = Thumbnails(settings.thumbnail_width)  # for the console's tree
        # ONVIF device status: None or health.onvif_status off asks no device
        self.target_for = target_for if settings.onvif_status else None
        self.devices: dict[int, DeviceReading] = {}  # each camera's latest, in memory
        self._no_onvif: set[int] = set()  # listed without an ONVIF address this period

    async def _cameras(self) -> list[tuple[int, str]]:
        cams = schema.cameras
        async with self.store.connect() as conn:
            # A field camera's status is its publisher's presence (web/whip.py) and an
            # imported camera's is its own platform's (federation sync): probing them would
            # only contradict that, and pull an imported camera from below every period.
            rows = (await conn.execute(select(cams.c.id, cams.c.category, cams.c.onvif_url)
                                       .where(cams.c.enabled.is_(True),
                                              cams.c.link_id.is_(None),
                                              cams.c.main_url != WHIP_SCHEME)
                                       .order_by(cams.c.id))).all()
        self._no_onvif = {r.id for r in rows if not r.onvif_url}
        return [(r.id, r.category) for r in rows if self.owns is None or self.owns(r.id)]

    def _forget(self, camera_id: int) -> None:
        """The frozen-picture history of ``camera_id`` starts again."""
        self.probes.forget(camera_id)

    def _verdict(self, camera_id: int, judged: Judged) -> Verdict:
        (status, reason, findings), thumb = judged
        if thumb is not None:
            jpeg, width, height = thumb
            self.thumbnails.keep(camera_id, Thumbnail(jpeg, width, height, utcnow()))
        return Verdict(status, reason, findings)

    async def _judge_unit(self, camera_id: int, category: str, data: bytes, codec: str,
                          fresh: bool) -> Verdict:
        return self._verdict(camera_id, await self.probes.unit(
            camera_id, category, data, codec, fresh, self.settings.probe_timeout))

    async def check(self, camera_id: int, category: str) -> Verdict | None:
        """One camera's verdict (None: nothing to judge, e.g. it has no stream address)."""
        variants: tuple[Variant, ...] = ("main", "sub")
        for variant in variants:
            state, unit, codec = self.hub.live_keyframe(StreamKey(camera_id, variant))
            if state == "stopped":
                continue
            if state == "retrying":
                self._forget(camera_id)
                return Verdict("offline", "unreachable")
            if unit is None or codec is None:  # connecting: its first keyframe judged
                return await self._judge_through_hub(
                    camera_id, category, self.settings.probe_timeout, variant)
            fresh = self._last_seq.get(camera_id) != unit.seq
            self._last_seq[camera_id] = unit.seq
            return await self._judge_unit(camera_id, category, unit.data, codec, fresh)
        try:
            spec = await self.resolve(StreamKey(camera_id, "main"))
        except SourceUnavailable as err:
            if err.reason == "disabled":
                return None
            raise
        except CamrelayError:
            return None  # no stream address: nothing a probe can check
        timeout = self.settings.probe_timeout
        if not spec.url.startswith(("rtsp://", "rtsps://")):
            return await self._judge_through_hub(camera_id, category, timeout)
        return self._verdict(camera_id, await self.probes.open(
            camera_id, category, spec, timeout + spec.connect_timeout + spec.read_timeout))

    async def _judge_through_hub(self, camera_id: int, category: str, timeout: float,
                                 variant: Variant = "main") -> Verdict:
        """A source only camrelay itself reads (``demo:``), or a stream still connecting
        (no second connection to the camera): judged as a viewer gets it."""
        async with asyncio.timeout(timeout):
            sub = await self.hub.subscribe(StreamKey(camera_id, variant), timeout=timeout)
            try:
                gop = sub.initial_gop
                unit = gop[0] if gop and gop[0].keyframe else await sub.get()
                while not unit.keyframe:
                    unit = await sub.get()
                codec = sub.info.codec
            finally:
                sub.close()
        return await self._judge_unit(camera_id, category, unit.data, codec, True)

    async def _device(self, camera_id: int) -> DeviceStatus | None:
        """The device's status (None: no usable ONVIF address); raises nothing but
        cancellation: an ONVIF problem never fails a check."""
        assert self.target_for is not None
        try:
            target = await self.target_for(camera_id)
            status = await device_status(target, timeout=self.settings.onvif_status_timeout)
        except asyncio.CancelledError:
            raise
        except CamrelayError:  # no ONVIF address: judged on its stream alone
            self.devices.pop(camera_id, None)
            return None
        except Exception:  # a bug or the store: logged, the stream's verdict stands
            log.exception("[camera %s] cannot ask the device for its status", camera_id)
            return None
        self.devices[camera_id] = DeviceReading(utcnow(), status)
        return status

    async def _stream_verdict(self, camera_id: int, category: str) -> Verdict | None:
        try:
            return await self.check(camera_id, category)
        except SourceUnavailable as err:
            self._forget(camera_id)
            reason = err.reason or "unreachable"
            return Verdict("offline" if reason in _OFFLINE_REASONS else "fault", reason)
        except TimeoutError:
            self._forget(camera_id)
            return Verdict("offline", "timeout")
        except (CamrelayError, ValueError, OSError) as exc:  # garbage from the camera
            log.warning("[camera %s] health check failed: %s", camera_id, exc)
            return Verdict("fault", "error")

    async def check_and_record(self, camera_id: int, category: str) -> Verdict | None:
        return (await self._check_and_record(camera_id, category))[0]

    async def _check_and_record(self, camera_id: int, category: str
                                ) -> tuple[Verdict | None, float]:
        """The recorded verdict, and the seconds the stream took to be judged."""
        asking = None
        if self.target_for is not None and camera_id not in self._no_onvif:
            asking = asyncio.create_task(self._device(camera_id),
                                         name=f"onvif status {camera_id}")
        started = time.monotonic()
        try:
            verdict = await self._stream_verdict(camera_id, category)
            seconds = time.monotonic() - started
            status = await asking if asking is not None else None
        finally:
            await stop_task(asking)  # still running only if the stream's check raised
        self.checks += 1
        if verdict is None:
            return None, seconds
        if verdict.status != "online" and not verdict.findings:
            self.thumbnails.forget(camera_id)  # no picture this time: none shown
        verdict = sharpen(verdict, status, self.settings.clock_drift_seconds)
        before, changed = await self.history.record(camera_id, verdict)
        if changed:
            log.info("[camera %s] %s -> %s (%s)", camera_id, before, verdict.status,
                     verdict.reason or "ok")
            for listener in self.listeners:
                listener(camera_id, verdict)
        if before is None:
            self.devices.pop(camera_id, None)
            return verdict, seconds  # removed from the catalogue meanwhile
        for observer in self.observers:
            await observer(camera_id, verdict)
        return verdict, seconds

    async def check_now(self, camera_id: int, category: str) -> tuple[Verdict | None, float]:
        """A drill's check: at once but within the same concurrency limit as the
        scheduler's, recorded the same way; with the seconds it took to a judged keyframe
        (for a watched camera: only the decode of the hub's cached one)."""
        async with self._limit:
            return await self._check_and_record(camera_id, category)

    async def _limited(self, camera_id: int, category: str) -> None:
        async with self._limit:
            try:
                await self.check_and_record(camera_id, category)
            except asyncio.CancelledError:
                raise
            except Exception:  # the store failed: log, the next period tries again
                log.exception("[camera %s] cannot record its health", camera_id)

    async def run_period(self) -> None:
        """Check every camera once, spread over the period; returns when all are done."""
        period = self.settings.period_seconds
        cameras = await self._cameras()
        gap = period / max(len(cameras), 1)
        loop = asyncio.get_running_loop()
        start = loop.time()
        async with asyncio.TaskGroup() as group:
            for i, (camera_id, category) in enumerate(cameras):
                delay = start + i * gap - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                group.create_task(self._limited(camera_id, category),
                                  name=f"health check {camera_id}")

    async def close(self) -> None:
        """End the probe process (if one runs); a later check starts another."""
        await self.probes.close()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                await self.run_period()
                await self.history.prune(self.settings.history_days)
                for hook in self.after_period:
                    await hook()
            except asyncio.CancelledError:
                raise
            except Exception:  # a store hiccup must not end the checks for good
                log.exception("health: a period failed; the next one starts on time")
            await asyncio.sleep(max(0.0, started + self.settings.period_seconds - loop.time()))
