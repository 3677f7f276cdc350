"""Alarms POSTed to the webhooks of ``[[alarms.webhooks]]``, signed, retried, never blocking.

Each webhook has its own bounded queue and its own task (a slow or dead receiver holds up
neither the health scheduler nor the other webhooks).  The body is the JSON
``{"event": "alarm.raised" | "alarm.cleared" | "alarm.acked", "alarm": {...}}``; the
headers ``X-Camrelay-Timestamp`` (Unix seconds) and ``X-Camrelay-Signature:
sha256=<hex>``, the HMAC-SHA256 with the webhook's secret of ``<timestamp>.<body>`` (the
receiver recomputes it and refuses old timestamps: no replay).  A failed POST (no answer
within the timeout, or a status other than 2xx) is retried ``retries`` times, 1 s, 2 s,
4 s ... apart, then given up with a log line.  A full queue drops the alarm with a log
line.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Mapping
from typing import Any

import aiohttp

from camrelay.redact import strip_credentials
from camrelay.settings import AlarmWebhook
from camrelay.tasks import stop_task

log = logging.getLogger(__name__)

BACKOFF_SECONDS = 1.0  # the first retry's delay; each next one doubles


def signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class _Hook:
    def __init__(self, config: AlarmWebhook, queue_size: int,
                 env: Mapping[str, str] | None) -> None:
        self.config = config
        self.secret = config.signing_key(env)
        self.units = frozenset(config.units)
        self.shown = strip_credentials(config.url)
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(queue_size)
        self.task: asyncio.Task[None] | None = None
        self.delivered = 0
        self.failed = 0
        self.dropped = 0

    def wants(self, units: tuple[str, ...]) -> bool:
        return not self.units or bool(self.units.intersection(units))

    async def run(self, session: aiohttp.ClientSession) -> None:
        while True:
            body = await self.queue.get()
            await self.deliver(session, body)

    async def deliver(self, session: aiohttp.ClientSession, body: bytes) -> None:
        config = self.config
        for attempt in range(config.retries + 1):
            if attempt:
                await asyncio.sleep(BACKOFF_SECONDS * 2 ** (attempt - 1))
            stamp = str(int(time.time()))
            try:
                async with session.post(config.url, data=body, timeout=aiohttp.ClientTimeout(
                        total=config.timeout), headers={
                        "Content-Type": "application/json",
                        "X-Camrelay-Timestamp": stamp,
                        "X-Camrelay-Signature": signature(self.secret, stamp, body)}) as resp:
                    if 200 <= resp.status < 300:
                        self.delivered += 1
                        return
                    why = f"HTTP {resp.status}"
            except (aiohttp.ClientError, TimeoutError, OSError) as err:
                why = type(err).__name__
            log.info("alarm webhook %s: attempt %d failed (%s)", self.shown, attempt + 1, why)
        self.failed += 1
        log.warning("alarm webhook %s: gave up after %d attempts (%s)", self.shown,
                    config.retries + 1, why)


class WebhookSender:
    """The webhooks' queues and tasks; :meth:`offer` never blocks."""

    def __init__(self, hooks: list[AlarmWebhook], queue_size: int = 1000,
                 env: Mapping[str, str] | None = None) -> None:
        self.hooks = [_Hook(h, queue_size, env) for h in hooks]
        self._session: aiohttp.ClientSession | None = None

    def offer(self, event: str, alarm: dict[str, Any]) -> None:
        if not self.hooks:
            return
        body = json.dumps({"event": event, "alarm": alarm}, ensure_ascii=False,
                          separators=(",", ":")).encode()
        units = tuple(alarm.get("units") or ())
        for hook in self.hooks:
            if not hook.wants(units):
                continue
            try:
                hook.queue.put_nowait(body)
            except asyncio.QueueFull:
                hook.dropped += 1
                log.warning("alarm webhook %s: queue full, %s of alarm %s dropped",
                            hook.shown, event, alarm.get("id"))

    async def start(self) -> None:
        if not self.hooks:
            return
        self._session = aiohttp.ClientSession()
        for i, hook in enumerate(self.hooks):
            hook.task = asyncio.create_task(hook.run(self._session),
                                            name=f"alarm webhook {i}")

    async def stop(self) -> None:
        for hook in self.hooks:
            await stop_task(hook.task)
            hook.task = None
        if self._session is not None:
            await self._session.close()
            self._session = None
