"""WHIP ingest (RFC 9725): field devices publish H.264 to the relay with aiortc.

One :class:`PublishSession` per publisher: an aiortc peer connection that only receives.
Its video receiver does not decode (``aiortc_internals.tap_encoded_frames``): the coded
frames go into the camera's :class:`~camrelay.relay.sources.whip.Feed`, which the hub's
``whip:`` source hands to the camera's stream, so viewers get the publisher's own H.264
through the same fan-out as any camera.  While a session is up the hub keeps the camera's
stream warm (its GOP cache ready for instant start); when it ends the stream is ended
with it, so viewers see the camera go offline at once.

* **Codecs.**  The answer takes the offer's H.264 with packetization-mode=1 (constrained
  baseline first) and their RTX; an offer without one is refused (400).  Audio m-lines
  are answered ``inactive`` (this slice carries video only).
* **Keyframes.**  A keyframe request (PLI) goes to the publisher when a stream binds to
  the feed and when its GOP grows longer than ``whip.KEYFRAME_INTERVAL``.
* **ICE.**  As the egress: no STUN/TURN unless configured, only the configured host
  addresses offered; the answer carries every candidate, so there is no trickle ICE.
* **Ownership.**  :class:`WhipIngest` owns the sessions; a session owns its peer
  connection, its feed's registration and one supervisor task, and ``close()`` releases
  them all (idempotent).  ICE failure, a publisher that never connects within
  ``connect_timeout`` and the publisher's DELETE close it.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpCodecParameters,
    RTCRtpReceiver,
    RTCSessionDescription,
)

from camrelay.errors import BadRequest
from camrelay.relay.hub import Hub
from camrelay.relay.media import Position, StreamKey
from camrelay.relay.sinks import aiortc_internals
from camrelay.relay.sinks.webrtc import WebRtcConfig, resolve_host_addresses
from camrelay.relay.sources.whip import Feed, Feeds
from camrelay.tasks import wait_any

log = logging.getLogger(__name__)

FOREVER = datetime(9999, 1, 1, tzinfo=UTC)


def publish_codecs(offered: tuple[RTCRtpCodecParameters, ...]) -> list[RTCRtpCodecParameters]:
    """The offer's usable H.264 (packetization-mode=1), constrained baseline first, each
    followed by its RTX; empty when there is none."""
    h264 = [c for c in offered if c.mimeType.lower() == "video/h264"
            and str(c.parameters.get("packetization-mode", "0")) == "1"]
    h264.sort(key=lambda c: not str(c.parameters.get("profile-level-id", "")).lower()
              .startswith("42e0"))
    out: list[RTCRtpCodecParameters] = []
    for codec in h264:
        out.append(codec)
        out.extend(c for c in offered if c.mimeType.lower() == "video/rtx"
                   and str(c.parameters.get("apt")) == str(codec.payloadType))
    return out


EndCallback = Callable[["PublishSession", str], Awaitable[None]]


class PublishSession:
    """One publisher's peer connection feeding one camera."""

    def __init__(self, session_id: str, camera_id: int, pc: RTCPeerConnection, feed: Feed,
                 feeds: Feeds, hub: Hub, owner: int | None, connect_timeout: float,
                 on_closed: Callable[[PublishSession], None]) -> None:
        self.id = session_id
        self.camera_id = camera_id
        self.pc = pc
        self.feed = feed
        self.owner = owner
        self.etag = secrets.token_hex(8)
        self.started = time.monotonic()
        self.started_at = datetime.now(UTC)
        self.position: Position | None = None
        self.receiver: RTCRtpReceiver | None = None
        self.on_end: EndCallback | None = None
        self.closed = asyncio.Event()
        self.connected = asyncio.Event()
        self.close_reason: str | None = None
        self._failed = asyncio.Event()
        self._feeds = feeds
        self._hub = hub
        self._connect_timeout = connect_timeout
        self._on_closed = on_closed
        self._supervisor: asyncio.Task[None] | None = None
        self._pli: asyncio.Task[bool] | None = None
        self.label = f"publisher {session_id[:8]} camera {camera_id}"

        @pc.on("connectionstatechange")
        def _state() -> None:
            state = pc.connectionState
            log.debug("[%s] connection %s", self.label, state)
            if state == "connected":
                self.connected.set()
            elif state in ("failed", "closed"):
                self._failed.set()

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started

    def start(self) -> None:
        self._supervisor = asyncio.get_running_loop().create_task(
            self._supervise(), name=f"camrelay-whip-{self.id[:8]}")

    def request_keyframe(self) -> None:
        """Send the publisher a PLI (at most one in flight)."""
        receiver = self.receiver
        if receiver is None or self.closed.is_set() or \
                (self._pli is not None and not self._pli.done()):
            return
        self._pli = asyncio.get_running_loop().create_task(
            aiortc_internals.request_picture(receiver), name=f"camrelay-whip-pli-{self.id[:8]}")

    async def _supervise(self) -> None:
        try:
            async with asyncio.timeout(self._connect_timeout):
                await wait_any(self.connected, self._failed)
        except TimeoutError:
            reason = "publisher did not connect"
        else:
            if not self._failed.is_set():
                await self._failed.wait()
            reason = "connection closed by publisher" \
                if self.pc.connectionState == "closed" else "ICE/DTLS failed"
        log.info("[%s] closing: %s", self.label, reason)
        await self.close(reason)

    async def close(self, reason: str = "ended") -> None:
        """Release everything (idempotent); the stream of the camera ends with it."""
        if self.close_reason is not None:
            await self.closed.wait()
            return
        self.close_reason = reason
        self._on_closed(self)
        try:
            self.feed.end()
            self._feeds.detach(self.feed)
            self._hub.end(StreamKey(self.camera_id))
            for task in (self._supervisor, self._pli):
                if task is not None and task is not asyncio.current_task():
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
            try:
                await self.pc.close()
            except Exception:  # aiortc teardown must not keep the rest from closing
                log.exception("[%s] peer connection close failed", self.label)
            if self.on_end is not None:
                try:
                    await self.on_end(self, reason)
                except Exception:  # the journal's failure is logged by it; go on closing
                    log.exception("[%s] end callback failed", self.label)
        finally:
            log.info("[%s] closed (%s) after %.1f s: %d units, %d keyframes, %d PLI",
                     self.label, reason, self.seconds, self.feed.units, self.feed.keyframes,
                     self.feed.keyframe_requests)
            self.closed.set()


class WhipIngest:
    """Owner of every publishing session of the process."""

    def __init__(self, feeds: Feeds, hub: Hub, config: WebRtcConfig) -> None:
        self.feeds = feeds
        self.hub = hub
        self.config = config
        self._sessions: dict[str, PublishSession] = {}
        self._host_addresses = (resolve_host_addresses(config.host_addresses)
                                if config.host_addresses else None)
        aiortc_internals.install_ice_patches()
        aiortc_internals.register_h264_profiles()

    def get(self, session_id: str) -> PublishSession | None:
        return self._sessions.get(session_id)

    def of_camera(self, camera_id: int) -> PublishSession | None:
        return next((s for s in self._sessions.values() if s.camera_id == camera_id), None)

    def sessions(self) -> list[PublishSession]:
        return list(self._sessions.values())

    def _rtc_configuration(self) -> RTCConfiguration:
        servers = [RTCIceServer(urls=list(s.urls), username=s.username,
                                credential=s.credential) for s in self.config.ice_servers]
        return RTCConfiguration(iceServers=servers)  # never None: no default STUN

    async def start_session(self, camera_id: int, offer_sdp: str, owner: int | None = None
                            ) -> tuple[PublishSession, str]:
        """Negotiate a publisher for ``camera_id``; raises ``FeedBusy`` (409) when the
        camera has one, ``BadRequest`` for an offer without usable H.264."""
        offer = aiortc_internals.parse_offer(offer_sdp)
        codecs = publish_codecs(offer.video_codecs)
        if not codecs:
            raise BadRequest("the offer has no H.264 with packetization-mode=1 (camrelay "
                             "relays the publisher's H.264 as it is, without re-encoding)")
        session_id = secrets.token_hex(16)
        holder: list[PublishSession] = []
        feed = Feed(camera_id, lambda: holder[0].request_keyframe() if holder else None)
        self.feeds.attach(feed)  # FeedBusy before any peer connection is made
        pc = RTCPeerConnection(self._rtc_configuration())
        try:
            with aiortc_internals.offering_host_addresses(self._host_addresses):
                try:
                    await pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
                except asyncio.CancelledError:
                    raise
                except Exception as err:
                    raise BadRequest(f"the SDP offer was refused: {type(err).__name__}: {err}"
                                     ) from err
                video = next((t for t in pc.getTransceivers() if t.kind == "video"), None)
                if video is None:
                    raise BadRequest("the SDP offer has no video m-line")
                for other in pc.getTransceivers():
                    if other is not video:
                        other.direction = "inactive"  # video only
                aiortc_internals.set_answer_codecs(video, codecs)
                video.direction = "recvonly"
                aiortc_internals.tap_encoded_frames(video.receiver, feed.push)
                answer = await pc.createAnswer()
                await pc.setLocalDescription(answer)
        except BaseException:
            self.feeds.detach(feed)
            await pc.close()
            raise
        session = PublishSession(session_id, camera_id, pc, feed, self.feeds, self.hub, owner,
                                 self.config.connect_timeout, self._forget)
        session.receiver = video.receiver
        holder.append(session)
        self._sessions[session_id] = session
        session.start()
        self.hub.keep_warm(StreamKey(camera_id), FOREVER)  # GOP cached for viewers
        log.info("[%s] started", session.label)
        return session, pc.localDescription.sdp

    def _forget(self, session: PublishSession) -> None:
        self._sessions.pop(session.id, None)

    async def close(self) -> None:
        """Close every session (application shutdown)."""
        sessions = list(self._sessions.values())
        await asyncio.gather(*(s.close("shutdown") for s in sessions), return_exceptions=True)
