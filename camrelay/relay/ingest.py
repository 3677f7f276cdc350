"""WHIP ingest (RFC 9725): field devices publish H.264 to the relay with aiortc.

One :class:`PublishSession` per publisher: an aiortc peer connection that only receives.
Its video receiver does not decode (``aiortc_internals.tap_encoded_frames``): the coded
frames go into the camera's :class:`~camrelay.relay.sources.whip.Feed`, which the hub's
``whip:`` source hands to the camera's stream, so viewers get the publisher's own H.264
through the same fan-out as any camera.  While a session is up the hub keeps the camera's
stream warm (its GOP cache ready for instant start); when it ends the stream is ended
with it, so viewers see the camera go offline at once.

* **Codecs.**  The answer takes the offer's H.264 with packetization-mode=1 (constrained
  baseline first) and their RTX; an offer without one is refused (400).  The first
  audio m-line is answered with its Opus: what the device sends goes to the stream's
  audio undecoded (``Feed.push_audio``); when the device also receives (``sendrecv``,
  ``recvonly``) the answer sends it the session's talk-back line
  (:mod:`camrelay.relay.talk`).  Audio without Opus, and any other m-line, is answered
  ``inactive``.
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
    RTCRtpTransceiver,
)

from camrelay.errors import BadRequest, Conflict
from camrelay.relay.backchannel import CameraTalk, open_backchannel
from camrelay.relay.hub import Hub
from camrelay.relay.media import Position, StreamKey
from camrelay.relay.peer import PeerWatch, end_peer, take_offer
from camrelay.relay.sinks import aiortc_internals
from camrelay.relay.sinks.audio import PacketTrack
from camrelay.relay.sinks.webrtc import WebRtcConfig, resolve_host_addresses
from camrelay.relay.sources.whip import OPUS, Feed, Feeds
from camrelay.relay.stream import SourceSpec
from camrelay.relay.talk import (
    TALK_RATE,
    TalkBusy,
    TalkLine,
    TalkSession,
    opus_codec,
    talk_codec,
)

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
        self.talk_line: TalkLine | None = None  # the device hears talk-back on it
        self.talks: set[TalkSession] = set()
        self.on_end: EndCallback | None = None
        self.closed = asyncio.Event()
        self.close_reason: str | None = None
        self._feeds = feeds
        self._hub = hub
        self._connect_timeout = connect_timeout
        self._on_closed = on_closed
        self._supervisor: asyncio.Task[None] | None = None
        self._pli: asyncio.Task[bool] | None = None
        self.label = f"publisher {session_id[:8]} camera {camera_id}"
        self._watch = PeerWatch(pc, self.label)

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
        reason = await self._watch.ended(self._connect_timeout, "publisher")
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
            if self.talk_line is not None:
                self.talk_line.close()
            talks, self.talks = list(self.talks), set()
            await asyncio.gather(*(t.close("the field device left") for t in talks),
                                 return_exceptions=True)
            self.feed.end()
            self._feeds.detach(self.feed)
            self._hub.end(StreamKey(self.camera_id))
            on_end = self.on_end
            await end_peer(self.label, self.pc, [self._supervisor, self._pli],
                           None if on_end is None else lambda: on_end(self, reason))
        finally:
            log.info("[%s] closed (%s) after %.1f s: %d units, %d keyframes, %d PLI",
                     self.label, reason, self.seconds, self.feed.units, self.feed.keyframes,
                     self.feed.keyframe_requests)
            self.closed.set()


class WhipIngest:
    """Owner of every publishing session of the process, and of every talk-back (to
    field devices over their session, to cameras over their ONVIF back-channel)."""

    def __init__(self, feeds: Feeds, hub: Hub, config: WebRtcConfig) -> None:
        self.feeds = feeds
        self.hub = hub
        self.config = config
        self._sessions: dict[str, PublishSession] = {}
        self._talks: dict[str, TalkSession] = {}  # to field devices and to cameras
        self._opening: set[int] = set()  # cameras whose back-channel is being opened
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
        opus = opus_codec(offer.audio_codecs) if offer.has_audio else None
        sends = opus is not None and offer.audio_direction in ("sendonly", "sendrecv")
        hears = opus is not None and offer.audio_direction in ("recvonly", "sendrecv")
        session_id = secrets.token_hex(16)
        holder: list[PublishSession] = []
        feed = Feed(camera_id, lambda: holder[0].request_keyframe() if holder else None,
                    audio=OPUS if sends else None)
        line = TalkLine(f"publisher {session_id[:8]} camera {camera_id}") if hears else None
        self.feeds.attach(feed)  # FeedBusy before any peer connection is made
        pc = RTCPeerConnection(self._rtc_configuration())
        try:
            with aiortc_internals.offering_host_addresses(self._host_addresses):
                await take_offer(pc, offer_sdp)
                video = next((t for t in pc.getTransceivers() if t.kind == "video"), None)
                if video is None:
                    raise BadRequest("the SDP offer has no video m-line")
                sound = next((t for t in pc.getTransceivers() if t.kind == "audio"), None)
                for other in pc.getTransceivers():
                    if other is not video and (other is not sound or opus is None):
                        other.direction = "inactive"  # one video, one Opus audio
                aiortc_internals.set_answer_codecs(video, codecs)
                video.direction = "recvonly"
                aiortc_internals.tap_encoded_frames(video.receiver, feed.push)
                if sound is not None and opus is not None:
                    aiortc_internals.set_answer_codecs(sound, [opus])
                    # aiortc answers the intersection with the device's own direction
                    sound.direction = "sendrecv" if hears else "recvonly"
                    if sends:
                        aiortc_internals.tap_encoded_frames(sound.receiver, feed.push_audio)
                    if line is not None:
                        sound.sender.replaceTrack(PacketTrack(line.next, TALK_RATE))
                answer = await pc.createAnswer()
                await pc.setLocalDescription(answer)
        except BaseException:
            self.feeds.detach(feed)
            await pc.close()
            raise
        session = PublishSession(session_id, camera_id, pc, feed, self.feeds, self.hub, owner,
                                 self.config.connect_timeout, self._forget)
        session.receiver = video.receiver
        session.talk_line = line
        holder.append(session)
        self._sessions[session_id] = session
        session.start()
        self.hub.keep_warm(StreamKey(camera_id), FOREVER)  # GOP cached for viewers
        log.info("[%s] started (audio: %s)", session.label,
                 "none" if opus is None else offer.audio_direction)
        return session, pc.localDescription.sdp

    async def start_talk(self, camera_id: int, offer_sdp: str, owner: int | None = None
                         ) -> tuple[TalkSession, str]:
        """Negotiate an operator's talk-back to ``camera_id``'s publisher: 409 without a
        publisher that hears audio (``no_publisher``, ``no_talkback``) or while someone
        else talks (``talk_busy``); 400 for an offer without Opus."""
        publisher = self.of_camera(camera_id)
        if publisher is None:
            raise Conflict(f"camera {camera_id} has no publisher", reason="no_publisher")
        line = publisher.talk_line
        if line is None:
            raise Conflict(f"camera {camera_id}'s device does not receive audio (its WHIP "
                           "offer's audio is not sendrecv or recvonly Opus)",
                           reason="no_talkback")
        opus = talk_codec(offer_sdp)
        pc = RTCPeerConnection(self._rtc_configuration())
        session = TalkSession(camera_id, pc, line, owner, self.config.connect_timeout,
                              self._forget_talk)
        line.claim(session.id)  # TalkBusy before anything else is made
        try:
            answer = await self._answer_talk(
                pc, offer_sdp, opus,
                lambda sound: aiortc_internals.tap_encoded_frames(sound.receiver, session.push))
        except BaseException:
            line.release(session.id)
            await pc.close()
            raise
        self._talks[session.id] = session
        publisher.talks.add(session)
        session.start()
        log.info("[%s] started for user %s", session.label, owner)
        return session, answer

    async def start_camera_talk(self, camera_id: int, spec: SourceSpec, offer_sdp: str,
                                owner: int | None = None) -> tuple[TalkSession, str]:
        """Negotiate an operator's talk-back to an RTSP camera's ONVIF back-channel
        (:mod:`camrelay.relay.backchannel`, a new RTSP session to ``spec.url``): 400 for
        an offer without Opus, 409 while someone else talks to it (``talk_busy``) or when
        it has no back-channel (``no_talkback``), 503 when it cannot be reached."""
        opus = talk_codec(offer_sdp)
        if camera_id in self._opening or any(t.camera_id == camera_id
                                             for t in self._talks.values()):
            raise TalkBusy(f"[camera {camera_id}] someone is already talking to this camera; "
                           "try again when they stop")
        self._opening.add(camera_id)  # TalkBusy for a second talker from here on
        try:
            backchannel = await open_backchannel(camera_id, spec)
            pc = RTCPeerConnection(self._rtc_configuration())
            session = CameraTalk(camera_id, pc, backchannel, owner, self.config.connect_timeout,
                                 self._forget_talk)
            try:
                answer = await self._answer_talk(
                    pc, offer_sdp, opus, lambda sound: session.listen(sound.receiver.track))
            except BaseException:
                await session.close("the talker's offer was refused")
                raise
            self._talks[session.id] = session
        finally:
            self._opening.discard(camera_id)
        session.start()
        log.info("[%s] started for user %s (%s)", session.label, owner, session.codec)
        return session, answer

    async def _answer_talk(self, pc: RTCPeerConnection, offer_sdp: str,
                           opus: RTCRtpCodecParameters,
                           receive: Callable[[RTCRtpTransceiver], None]) -> str:
        """Answer a talker's offer on ``pc``: its audio received in ``opus``
        (``receive`` hooks the transceiver before the answer), everything else inactive."""
        with aiortc_internals.offering_host_addresses(self._host_addresses):
            await take_offer(pc, offer_sdp)
            sound = next(t for t in pc.getTransceivers() if t.kind == "audio")
            for other in pc.getTransceivers():
                if other is not sound:
                    other.direction = "inactive"
            aiortc_internals.set_answer_codecs(sound, [opus])
            sound.direction = "recvonly"
            receive(sound)
            await pc.setLocalDescription(await pc.createAnswer())
        return str(pc.localDescription.sdp)

    def talk(self, session_id: str) -> TalkSession | None:
        return self._talks.get(session_id)

    def _forget_talk(self, session: TalkSession) -> None:
        self._talks.pop(session.id, None)
        publisher = self.of_camera(session.camera_id)
        if publisher is not None:
            publisher.talks.discard(session)

    def _forget(self, session: PublishSession) -> None:
        self._sessions.pop(session.id, None)

    async def close(self) -> None:
        """Close every session (application shutdown)."""
        talks = list(self._talks.values())
        await asyncio.gather(*(t.close("shutdown") for t in talks), return_exceptions=True)
        sessions = list(self._sessions.values())
        await asyncio.gather(*(s.close("shutdown") for s in sessions), return_exceptions=True)
