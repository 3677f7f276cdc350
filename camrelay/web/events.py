"""The live channel's Server-Sent Events route over the bus (:mod:`camrelay.events`).

Who sees what: an event aimed at a user (``user_id``) or a token (``token_id``) goes
to that user's or token's channels only; an event about a camera (``camera_id``) goes
to those who may list that camera (the catalogue's listing scope, so
``catalog.visibility = "subtree"`` is kept here too).  The filter for cameras runs in
the subscriber's own handler, off the publisher's path.
"""

from __future__ import annotations

import asyncio
import json
import time

from aiohttp import web

from camrelay.access.accounts import Principal, Role
from camrelay.errors import AuthenticationRequired, CameraNotFound
from camrelay.events import KEEPALIVE_SECONDS, Event, EventBus
from camrelay.web.context import principal
from camrelay.web.keys import ACCOUNTS_KEY, CATALOG_KEY, EVENTS_KEY, POLICY_KEY
from camrelay.web.openapi import Api

SCOPE_SECONDS = 30.0  # how long a subscriber's listing scope is trusted before re-reading

EVENT_TYPES = {
    "hello": "first event of every stream: who the channel belongs to (user, unit, role)",
    "camera.status": "a camera's catalogue status changed: {camera_id, status}",
    "stream.state": "the relay's stream of a camera changed state: {camera_id, stream, "
                    "state: connecting|live|reconnecting|idle, reason: a short code such as "
                    "unreachable, auth, timeout, no_video (never the camera's address)}",
    "view.revoked": "one of the caller's live views was cut by the server: "
                    "{camera_id, session, reason}",
    "token.revoked": "the channel's token no longer signs in (revoked, expired, signed "
                     "out, account disabled): {reason: token revoked|signed out|the "
                     "server's sentence, by: who revoked it or null}; the stream ends after it",
    "grant.requested": "a grant was requested (the Grant as GET /api/v1/grants/{id} shows "
                       "it): to approvers and administrators",
    "grant.decided": "a grant was approved, rejected or revoked (the Grant): to its "
                     "requester, its grantee user or unit, approvers and administrators",
    "emergency.opened": "emergency access was opened (the Emergency): to approvers, "
                        "administrators, auditors and the opener's unit",
    "emergency.confirmed": "an approver confirmed emergency access (the Emergency): the same",
    "emergency.revoked": "emergency access was revoked (the Emergency; its views are cut at "
                         "once by view.revoked): the same",
    "screen.show": "a desk sent a layout or a tour to a wall screen (the Screen as GET "
                   "/api/v1/screens lists it): to the screen's service account and the "
                   "users of the screen's unit",
    "alarm.raised": "an alarm was raised (the Alarm as GET /api/v1/alarms shows it): to the "
                    "users of the units it is routed to (the camera's owner and maintenance "
                    "units, with alarms.route_to_parents their parents)",
    "alarm.cleared": "an alarm's condition ended (the Alarm): the same",
    "alarm.acked": "an alarm was acknowledged (the Alarm with its ack): the same",
    "catalog.changed": "units or cameras were added, changed or removed, or a status "
                       "changed: {} (to federation credentials only: the upper platform "
                       "syncs again)",
    "federation.push": "cameras were pushed upward: {cameras, until, reason, by, unit} (to "
                       "the federation credentials they were pushed to)",
}
# what a federation credential's channel carries (the rest is about this platform's users)
FEDERATION_EVENTS = {"hello", "catalog.changed", "federation.push", "token.revoked"}


def sse(event: Event) -> bytes:
    payload = json.dumps(event.data, ensure_ascii=False, separators=(",", ":"))
    return f"event: {event.type}\ndata: {payload}\n\n".encode()


class _Scope:
    """Which cameras the subscriber may list, re-read every ``SCOPE_SECONDS``."""

    def __init__(self, request: web.Request, who: Principal) -> None:
        self.request = request
        self.who = who
        self.units: frozenset[int] | None = None
        self.read_at = -SCOPE_SECONDS
        self.camera_units: dict[int, int] = {}

    async def allows(self, camera_id: int) -> bool:
        if time.monotonic() - self.read_at > SCOPE_SECONDS:
            self.units = await self.request.app[POLICY_KEY].listing_scope(self.who)
            self.read_at = time.monotonic()
            self.camera_units.clear()
        if self.units is None:
            return True
        unit = self.camera_units.get(camera_id)
        if unit is None:
            try:
                camera = await self.request.app[CATALOG_KEY].get_camera(camera_id)
            except CameraNotFound:
                return False
            unit = self.camera_units[camera_id] = camera.unit_id
        return unit in self.units


api = Api()


@api.route("GET", "/api/v1/events", tag="events",
           summary="The caller's live channel (Server-Sent Events; Bearer header, so read it "
                   "with fetch() and a stream reader, not EventSource)",
           responses={200: (
               "text/event-stream: `event: <type>` and `data: <JSON>` per message, a "
               f"`: keep-alive` comment every {KEEPALIVE_SECONDS:g} s. Types: " + "; ".join(
                   f"`{name}`: {text}" for name, text in EVENT_TYPES.items()),
               {"type": "string"}, "text/event-stream")},
           errors=(401,))
async def events_route(request: web.Request) -> web.StreamResponse:
    """``GET /api/v1/events``: the caller's live channel (text/event-stream)."""
    who = principal(request)
    bus = request.app[EVENTS_KEY]
    secret = request.headers.get("Authorization", "").partition(" ")[2].strip()
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-store",
        "X-Accel-Buffering": "no"})
    await response.prepare(request)
    scope = _Scope(request, who)
    try:
        await _pump(request, response, bus, scope, secret)
    except ConnectionResetError:  # the page went away
        pass
    return response


async def _pump(request: web.Request, response: web.StreamResponse, bus: EventBus,
                scope: _Scope, secret: str) -> None:
    who = scope.who
    with bus.subscribe(who.user_id, who.token_id, role=who.role.value,
                       unit_id=who.user.unit_id) as sub:
        await response.write(sse(Event("hello", {
            "user": who.user.username, "unit": who.user.unit_code, "role": who.role.value,
            "keepalive_seconds": bus.keepalive})))
        while True:
            try:
                event = await asyncio.wait_for(sub.queue.get(), bus.keepalive)
            except TimeoutError:
                try:
                    await request.app[ACCOUNTS_KEY].authenticate(secret)
                except AuthenticationRequired as err:
                    await response.write(sse(Event("token.revoked", {"reason": err.detail})))
                    break
                await response.write(b": keep-alive\n\n")
                continue
            if event is None:
                break
            if who.role is Role.FEDERATION and event.type not in FEDERATION_EVENTS:
                continue
            if event.camera_id is not None and not await scope.allows(event.camera_id):
                continue
            await response.write(sse(event))
            if event.type == "token.revoked":
                break
