"""A fake ONVIF camera on loopback: SOAP device/media/PTZ/events services and a WS-Discovery
responder.

It answers the way the cameras in ``data/`` do (see ``data/README.md``): its clock is
minutes off, it checks WS-Security UsernameToken digests against *its* clock and answers
a wrong or stale token with the ``ter:NotAuthorized`` fault and HTTP 400 (Hikvision) or
401, and it advertises XAddrs on a foreign host, as a camera behind NAT does.  Requests
are parsed, not pattern-matched, so whatever the real onvif-zeep-async client sends is
what is checked.

The events service keeps PullPoint subscriptions as a camera does: each lives until its
termination time (on the camera's clock) unless renewed; ``push_event`` queues a
notification for every live subscription, ``PullMessages`` long-polls for them, and
``drop_subscriptions`` forgets them all, as a camera does when it restarts.

Hooks for the health checks: ``clock_offset`` (the camera's clock against ours),
``refuse_auth`` (every authenticated call gets ``ter:NotAuthorized``, as when the
stored password was changed on the camera) and ``stop_answering`` / ``answer_again`` (the
port accepts connections, requests get no answer: a hung device).

Media ``SetSynchronizationPoint`` (the camera inserts a keyframe): the profile tokens asked
for land in ``sync_points`` and go to ``on_sync_point(token)`` if set (a test forwards it to
``CamSim.force_keyframe``); ``sync_point_supported = False`` answers
``ter:ActionNotSupported``, as cameras without it do.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import hashlib
import os
import re
import secrets
import socket
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from urllib.parse import quote
from xml.sax.saxutils import escape

from aiohttp import web

DATA = Path(__file__).parent / "data"

JPEG = bytes.fromhex(
    "ffd8ffe000104a46494600010100000100010000ffdb004300080606070605080707070909080a0c140d0c0b0b0c"
    "1912130f141d1a1f1e1d1a1c1c20242e2720222c231c1c2837292c30313434341f27393d38323c2e333432ffc0000b"
    "080001000101011100ffc4001f0000010501010101010100000000000000000102030405060708090a0bffc400b510"
    "0002010303020403050504040000017d01020300041105122131410613516107227114328191a1082342b1c11552d1"
    "f02433627282090a161718191a25262728292a3435363738393a434445464748494a535455565758595a6364656667"
    "68696a737475767778797a838485868788898a92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2"
    "c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae1e2e3e4e5e6e7e8e9eaf1f2f3f4f5f6f7f8f9faffda0008010100003f00"
    "fbd3ffd9"
)

_NS_PTZ_SERVICE = """<tds:Service><tds:Namespace>http://www.onvif.org/ver20/ptz/wsdl</tds:Namespace>\
<tds:XAddr>http://$advertised/onvif/PTZ</tds:XAddr><tds:Version><tt:Major>17</tt:Major>\
<tt:Minor>12</tt:Minor></tds:Version></tds:Service>"""
_PTZ_CAPABILITY = "<tt:PTZ><tt:XAddr>http://$advertised/onvif/PTZ</tt:XAddr></tt:PTZ>"
_PTZ_CONFIGURATION = """<tt:PTZConfiguration token="PTZToken"><tt:Name>PTZ</tt:Name>\
<tt:UseCount>2</tt:UseCount><tt:NodeToken>PTZNODETOKEN</tt:NodeToken>\
<tt:DefaultContinuousPanTiltVelocitySpace>\
http://www.onvif.org/ver10/tptz/PanTiltSpaces/VelocityGenericSpace\
</tt:DefaultContinuousPanTiltVelocitySpace>\
<tt:DefaultContinuousZoomVelocitySpace>\
http://www.onvif.org/ver10/tptz/ZoomSpaces/VelocityGenericSpace\
</tt:DefaultContinuousZoomVelocitySpace>\
<tt:DefaultPTZTimeout>PT5S</tt:DefaultPTZTimeout></tt:PTZConfiguration>"""

_WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
_WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _find(elem: ET.Element, *path: str) -> ET.Element | None:
    node: ET.Element | None = elem
    for name in path:
        if node is None:
            return None
        node = next((c for c in node if _local(c.tag) == name), None)
    return node


def template(file: str, /, **values: str) -> str:
    return Template((DATA / file).read_text()).safe_substitute(values)


def _iso(when: dt.datetime) -> str:
    return when.isoformat(timespec="seconds").replace("+00:00", "Z")


def _duration(text: str) -> dt.timedelta | None:
    """``PT1H2M3S`` (what clients send) as a timedelta; None if not a duration."""
    match = re.fullmatch(r"P(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?", text)
    if match is None or text in ("P", "PT"):
        return None
    hours, minutes, seconds = match.groups()
    return dt.timedelta(hours=int(hours or 0), minutes=int(minutes or 0),
                        seconds=float(seconds or 0))


@dataclass
class Subscription:
    """One PullPoint subscription of the fake camera."""

    idx: int
    termination: dt.datetime  # camera clock
    queue: list[str] = field(default_factory=list)  # NotificationMessage fragments
    wake: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class PtzMove:
    profile_token: str
    pan: float | None
    tilt: float | None
    zoom: float | None


@dataclass
class FakeCamera:
    """The SOAP side. ``await start()``, then talk to ``host``/``port``; ``await close()``."""

    username: str = "admin"
    password: str = "Tr0ub4dor&3"
    clock_offset: dt.timedelta = dt.timedelta(minutes=7, seconds=13)
    created_tolerance: dt.timedelta = dt.timedelta(seconds=30)
    fault_status: int = 400
    advertised_host: str = "127.0.0.3"
    """Host in the XAddrs/URIs the camera advertises, as a camera behind NAT does. Another
    loopback address: should a rewrite ever fail, the stray call still stays on loopback
    (and finds nothing listening)."""
    ptz: bool = True
    serial_number: str = "DS-2DE4A425IW-DE20200617CCWRE12345678"
    stream_uris: dict[str, str] = field(default_factory=dict)
    snapshot: bytes = JPEG

    operations: list[str] = field(default_factory=list)
    auth_failures: list[str] = field(default_factory=list)
    ptz_moves: list[PtzMove] = field(default_factory=list)
    ptz_stops: list[str] = field(default_factory=list)
    gotos: list[str] = field(default_factory=list)
    sync_point_supported: bool = True
    sync_points: list[str] = field(default_factory=list)  # ProfileTokens of SetSynchronizationPoint
    on_sync_point: Callable[[str], None] | None = None
    snapshot_fetches: int = 0
    paths: list[str] = field(default_factory=list)
    garbage: bool = False
    """Answer every SOAP request with an HTML page (a device that answers garbage)."""
    refuse_auth: bool = False
    """Refuse every authenticated call with ``ter:NotAuthorized``."""
    _answering: asyncio.Event = field(default_factory=asyncio.Event)
    waiting: int = 0  # requests held while not answering
    subscriptions: dict[int, Subscription] = field(default_factory=dict)
    subscribed: int = 0  # CreatePullPointSubscription calls answered
    renewals: list[tuple[dt.datetime, dt.datetime]] = field(default_factory=list)
    """(when, termination it replaced), camera clock: a renewal came in time if when < termination."""
    expired: list[int] = field(default_factory=list)  # subscriptions that ran out
    unsubscribed: list[int] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    host: str = "127.0.0.1"
    port: int = 0
    _runner: web.AppRunner | None = None
    _digest_nonce: str = field(default_factory=lambda: secrets.token_hex(16))

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self.clock_offset

    async def start(self) -> FakeCamera:
        app = web.Application()
        app.router.add_post("/onvif/{service}", self._soap)
        app.router.add_get("/onvif/snapshot", self._snapshot)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        sockets = site._server.sockets  # type: ignore[union-attr]
        self.port = sockets[0].getsockname()[1]
        self._answering.set()
        if not self.stream_uris:
            self.stream_uris = {
                "Profile_1": f"rtsp://{self.advertised_host}:554/Streaming/Channels/101"
                             "?transportmode=unicast&profile=Profile_1",
                "Profile_2": f"rtsp://{self.advertised_host}:554/Streaming/Channels/102"
                             "?transportmode=unicast&profile=Profile_2",
            }
        return self

    async def close(self) -> None:
        self.drop_subscriptions()
        self._answering.set()  # held requests end
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    # --- the test's hooks on the events service ------------------------------------------

    def push_event(self, topic: str, data: dict[str, str], *,
                   source: dict[str, str] | None = None, operation: str = "Changed") -> None:
        """Queue a notification (``topic`` such as ``tns1:VideoSource/MotionAlarm``) for
        every live subscription."""
        def items(values: dict[str, str]) -> str:
            return "".join(f'<tt:SimpleItem Name="{escape(k)}" Value="{escape(v)}"/>'
                           for k, v in values.items())

        message = template("NotificationMessage.xml", topic=escape(topic),
                           utc=_iso(self.now()), operation=operation,
                           source=items(source or {"VideoSourceConfigurationToken": "VSC_1"}),
                           data=items(data))
        for sub in self.subscriptions.values():
            sub.queue.append(message)
            sub.wake.set()

    def stop_answering(self) -> None:
        """Hold every request from now on without answering (the device hangs)."""
        self._answering.clear()

    def answer_again(self) -> None:
        self._answering.set()

    def drop_subscriptions(self) -> None:
        """Forget every subscription (the camera restarted); waiting pulls get a fault."""
        for sub in self.subscriptions.values():
            sub.wake.set()
        self.subscriptions.clear()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 20.0) -> None:
        """Until ``predicate()`` holds, checked after each SOAP request."""
        async with asyncio.timeout(timeout), self.changed:
            await self.changed.wait_for(predicate)

    # --- SOAP -------------------------------------------------------------------------

    def _authorised(self, envelope: ET.Element, operation: str) -> bool:
        token = _find(envelope, "Header", "Security", "UsernameToken")
        if token is None:
            self.auth_failures.append(f"{operation}: no UsernameToken")
            return False
        username = _find(token, "Username")
        password = _find(token, "Password")
        nonce = _find(token, "Nonce")
        created = _find(token, "Created")
        if username is None or password is None or nonce is None or created is None:
            self.auth_failures.append(f"{operation}: incomplete UsernameToken")
            return False
        if (username.text or "") != self.username:
            self.auth_failures.append(f"{operation}: unknown user")
            return False
        created_text = (created.text or "").strip()
        expected = base64.b64encode(hashlib.sha1(
            base64.b64decode(nonce.text or "") + created_text.encode() + self.password.encode()
        ).digest()).decode()
        if not secrets.compare_digest(expected, (password.text or "").strip()):
            self.auth_failures.append(f"{operation}: wrong digest")
            return False
        when = dt.datetime.fromisoformat(created_text)
        if abs(when - self.now()) > self.created_tolerance:
            self.auth_failures.append(f"{operation}: stale Created {created_text}")
            return False
        return True

    def _fault(self, name: str, status: int) -> web.Response:
        return web.Response(status=status, text=template(name),
                            content_type="application/soap+xml", charset="utf-8")

    def _ok(self, text: str) -> web.Response:
        return web.Response(text=text, content_type="application/soap+xml", charset="utf-8")

    async def _soap(self, request: web.Request) -> web.Response:
        if not self._answering.is_set():
            self.waiting += 1
            async with self.changed:
                self.changed.notify_all()
            await self._answering.wait()
        try:
            return await self._answer(request)
        finally:
            async with self.changed:
                self.changed.notify_all()

    async def _answer(self, request: web.Request) -> web.Response:
        self.paths.append(request.path)
        if self.garbage:
            return web.Response(text="<html><body>Welcome to the web interface</body></html>",
                                content_type="text/html")
        envelope = ET.fromstring(await request.read())
        body = _find(envelope, "Body")
        assert body is not None and len(body), "request without a SOAP body"
        call = body[0]
        operation = _local(call.tag)
        self.operations.append(operation)
        if operation != "GetSystemDateAndTime" and (
                self.refuse_auth or not self._authorised(envelope, operation)):
            return self._fault("Fault_NotAuthorized.xml", self.fault_status)
        advertised = self.advertised_host
        if operation == "GetSystemDateAndTime":
            now = self.now()
            return self._ok(template(
                "GetSystemDateAndTime.xml", year=str(now.year), month=str(now.month),
                day=str(now.day), hour=str(now.hour), minute=str(now.minute),
                second=str(now.second)))
        if operation == "GetDeviceInformation":
            return self._ok(template("GetDeviceInformation.xml",
                                     serial=escape(self.serial_number)))
        if operation == "GetServices":
            ptz = Template(_NS_PTZ_SERVICE).substitute(advertised=advertised) if self.ptz else ""
            return self._ok(template("GetServices.xml", advertised=advertised, ptz_service=ptz))
        if operation == "GetCapabilities":
            ptz = Template(_PTZ_CAPABILITY).substitute(advertised=advertised) if self.ptz else ""
            return self._ok(template("GetCapabilities.xml", advertised=advertised,
                                     ptz_capability=ptz))
        if operation == "GetProfiles":
            return self._ok(template("GetProfiles.xml",
                                     ptz_configuration=_PTZ_CONFIGURATION if self.ptz else ""))
        if operation == "GetStreamUri":
            token = (_find(call, "ProfileToken").text or "")  # type: ignore[union-attr]
            setup = _find(call, "StreamSetup")
            assert setup is not None
            assert (_find(setup, "Stream").text or "") == "RTP-Unicast"  # type: ignore[union-attr]
            return self._ok(template("GetStreamUri.xml", uri=escape(self.stream_uris[token])))
        if operation == "GetSnapshotUri":
            uri = f"http://{advertised}/onvif/snapshot?channel=1"
            return self._ok(template("GetSnapshotUri.xml", uri=uri))
        if operation == "SetSynchronizationPoint" and self.sync_point_supported:
            self.sync_points.append(_text(_find(call, "ProfileToken")) or "")
            if self.on_sync_point is not None:
                self.on_sync_point(self.sync_points[-1])
            return self._ok(template("SetSynchronizationPoint.xml"))
        if operation in ("CreatePullPointSubscription", "PullMessages", "Renew",
                         "Unsubscribe"):
            return await self._events(request, call, operation)
        if operation in ("ContinuousMove", "Stop", "GetPresets", "GotoPreset") and not self.ptz:
            return self._fault("Fault_ActionNotSupported.xml", 400)
        if operation == "ContinuousMove":
            token = _find(call, "ProfileToken")
            pan_tilt = _find(call, "Velocity", "PanTilt")
            zoom = _find(call, "Velocity", "Zoom")
            self.ptz_moves.append(PtzMove(
                profile_token=(token.text or "") if token is not None else "",
                pan=float(pan_tilt.get("x", "nan")) if pan_tilt is not None else None,
                tilt=float(pan_tilt.get("y", "nan")) if pan_tilt is not None else None,
                zoom=float(zoom.get("x", "nan")) if zoom is not None else None,
            ))
            return self._ok(template("ContinuousMove.xml"))
        if operation == "Stop":
            token = _find(call, "ProfileToken")
            self.ptz_stops.append((token.text or "") if token is not None else "")
            return self._ok(template("Stop.xml"))
        if operation == "GetPresets":
            return self._ok(template("GetPresets.xml"))
        if operation == "GotoPreset":
            preset = _find(call, "PresetToken")
            self.gotos.append((preset.text or "") if preset is not None else "")
            return self._ok(template("GotoPreset.xml"))
        return self._fault("Fault_ActionNotSupported.xml", 400)

    # --- events: PullPoint subscriptions ---------------------------------------------------

    def _termination(self, text: str | None) -> dt.datetime:
        text = (text or "").strip()
        length = _duration(text)
        if length is not None:
            return self.now() + length
        if text:
            return dt.datetime.fromisoformat(text)
        return self.now() + dt.timedelta(seconds=60)

    def _live(self, request: web.Request) -> Subscription | None:
        sub = self.subscriptions.get(int(request.query.get("Idx", "0") or 0))
        if sub is not None and self.now() > sub.termination:
            del self.subscriptions[sub.idx]
            self.expired.append(sub.idx)
            return None
        return sub

    async def _events(self, request: web.Request, call: ET.Element,
                      operation: str) -> web.Response:
        if operation == "CreatePullPointSubscription":
            self.subscribed += 1
            idx = self.subscribed
            termination = self._termination(_text(_find(call, "InitialTerminationTime")))
            self.subscriptions[idx] = Subscription(idx, termination)
            return self._ok(template("CreatePullPointSubscription.xml",
                                     advertised=self.advertised_host, idx=str(idx),
                                     now=_iso(self.now()), termination=_iso(termination)))
        sub = self._live(request)
        if sub is None:
            return self._fault("Fault_ResourceUnknown.xml", 400)
        if operation == "Renew":
            termination = self._termination(_text(_find(call, "TerminationTime")))
            self.renewals.append((self.now(), sub.termination))
            sub.termination = termination
            return self._ok(template("Renew.xml", now=_iso(self.now()),
                                     termination=_iso(termination)))
        if operation == "Unsubscribe":
            del self.subscriptions[sub.idx]
            self.unsubscribed.append(sub.idx)
            return self._ok(template("Unsubscribe.xml"))
        # PullMessages: wait up to Timeout for something to send
        wait = _duration(_text(_find(call, "Timeout")) or "PT1S") or dt.timedelta(seconds=1)
        limit = int(_text(_find(call, "MessageLimit")) or 1)
        if not sub.queue:
            sub.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(sub.wake.wait(), wait.total_seconds())
        if self.subscriptions.get(sub.idx) is not sub:  # dropped meanwhile
            return self._fault("Fault_ResourceUnknown.xml", 400)
        sent, sub.queue[:limit] = sub.queue[:limit], []
        return self._ok(template("PullMessages.xml", now=_iso(self.now()),
                                 termination=_iso(sub.termination), messages="".join(sent)))

    # --- snapshot over HTTP digest (RFC 7616, MD5, qop=auth) ---------------------------

    async def _snapshot(self, request: web.Request) -> web.Response:
        realm = "IP Camera(C1234)"
        header = request.headers.get("Authorization", "")
        if header.startswith("Digest "):
            params = {
                k.strip(): v.strip().strip('"')
                for k, _, v in (item.partition("=") for item in _split_digest(header[7:]))
            }
            ha1 = hashlib.md5(f"{self.username}:{realm}:{self.password}".encode()).hexdigest()
            ha2 = hashlib.md5(f"GET:{params.get('uri', '')}".encode()).hexdigest()
            expected = hashlib.md5(
                f"{ha1}:{params.get('nonce')}:{params.get('nc')}:{params.get('cnonce')}:"
                f"{params.get('qop')}:{ha2}".encode()).hexdigest()
            if (params.get("username") == self.username and params.get("nonce") ==
                    self._digest_nonce and secrets.compare_digest(expected,
                                                                  params.get("response", ""))):
                self.snapshot_fetches += 1
                return web.Response(body=self.snapshot, content_type="image/jpeg")
        return web.Response(
            status=401, text="<html><body>401 Unauthorized</body></html>",
            content_type="text/html",
            headers={"WWW-Authenticate": f'Digest qop="auth", realm="{realm}", '
                                         f'nonce="{self._digest_nonce}", stale="FALSE"'})


def _text(elem: ET.Element | None) -> str | None:
    return None if elem is None else (elem.text or "").strip()


def _split_digest(value: str) -> list[str]:
    items, current, quoted = [], "", False
    for char in value:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            items.append(current)
            current = ""
        else:
            current += char
    if current.strip():
        items.append(current)
    return items


# --- WS-Discovery ---------------------------------------------------------------------


DEFAULT_SCOPE_NAME = "HIKVISION DS-2DE4A425IW-DE"


def probe_matches(*, relates_to: str, endpoint_reference: str, xaddrs: str,
                  name: str = DEFAULT_SCOPE_NAME) -> bytes:
    return template("ProbeMatches.xml", message_id=str(uuid.uuid4()), relates_to=relates_to,
                    endpoint_reference=endpoint_reference, xaddrs=xaddrs,
                    name=quote(name)).encode()


@dataclass(frozen=True)
class Neighbour:
    """Another device whose answers come from the responder's address (a second camera
    port-forwarded through the same router, another channel of an encoder)."""

    endpoint_reference: str
    xaddrs: str
    name: str


@dataclass
class FakeDiscoveryResponder(asyncio.DatagramProtocol):
    """Answers WS-Discovery Probes like a camera; ``quirks`` adds what real networks send.

    Quirks: ``malformed`` (garbage first), ``doctype`` (an entity-expansion attempt),
    ``unrelated`` (a ProbeMatches relating to someone else's probe), ``duplicate`` (the
    answer twice), ``no_relates_to`` (an answer without RelatesTo).  ``neighbours`` answer
    each probe on the same socket, before this device does.
    """

    endpoint_reference: str = field(default_factory=lambda: f"urn:uuid:{uuid.uuid4()}")
    xaddrs: str = "http://127.0.0.1:80/onvif/device_service"
    name: str = DEFAULT_SCOPE_NAME
    neighbours: list[Neighbour] = field(default_factory=list)
    quirks: frozenset[str] = frozenset()
    probes: list[tuple[str, str]] = field(default_factory=list)
    port: int = 0
    _transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        envelope = ET.fromstring(data)
        message_id = _find(envelope, "Header", "MessageID")
        probe = _find(envelope, "Body", "Probe")
        if message_id is None or probe is None:
            return
        types = _find(probe, "Types")
        assert types is not None and "NetworkVideoTransmitter" in (types.text or "")
        self.probes.append((str(addr[0]), message_id.text or ""))
        assert self._transport is not None
        send = self._transport.sendto
        if "malformed" in self.quirks:
            send(b"<SOAP-ENV:Envelope><unclosed", addr)
        if "doctype" in self.quirks:
            send(b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaa">'
                 b'<!ENTITY b "&a;&a;&a;&a;&a;&a;">]><Envelope>&b;</Envelope>', addr)
        if "unrelated" in self.quirks:
            send(probe_matches(relates_to=f"urn:uuid:{uuid.uuid4()}",
                               endpoint_reference="urn:uuid:someone-elses-camera",
                               xaddrs="http://127.0.0.1:9/onvif/device_service"), addr)
        relates_to = "" if "no_relates_to" in self.quirks else (message_id.text or "")
        for other in self.neighbours:
            send(probe_matches(relates_to=relates_to, endpoint_reference=other.endpoint_reference,
                               xaddrs=other.xaddrs, name=other.name), addr)
        answer = probe_matches(relates_to=relates_to, endpoint_reference=self.endpoint_reference,
                               xaddrs=self.xaddrs, name=self.name)
        if "no_relates_to" in self.quirks:
            answer = answer.replace(b"<wsa:RelatesTo></wsa:RelatesTo>", b"")
        send(answer, addr)
        if "duplicate" in self.quirks:
            send(answer, addr)

    async def start(self, host: str = "127.0.0.1") -> FakeDiscoveryResponder:
        loop = asyncio.get_running_loop()
        self._transport, _ = await loop.create_datagram_endpoint(lambda: self,
                                                                 local_addr=(host, 0))
        self.port = self._transport.get_extra_info("sockname")[1]
        return self

    async def start_multicast(self, group: str, interface: str = "127.0.0.1"
                              ) -> FakeDiscoveryResponder:
        """Join ``group`` on the interface with address ``interface`` (inside a namespace)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("0.0.0.0", 0))
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                        socket.inet_aton(group) + socket.inet_aton(interface))
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(interface))
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        self._transport, _ = await loop.create_datagram_endpoint(lambda: self, sock=sock)
        self.port = sock.getsockname()[1]
        return self

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


def in_isolated_namespace() -> bool:
    """True when the only network interface is loopback (the ``scripts/test`` namespace)."""
    return os.environ.get("CAMRELAY_TEST_NETNS") == "1" and [
        name for _, name in socket.if_nameindex()] == ["lo"]
