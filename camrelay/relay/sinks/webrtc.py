"""WebRTC egress with aiortc: forward a camera's H.264 to viewers without re-encoding.

This module uses aiortc's public API only; what reaches into aiortc's and aioice's
private parts is :mod:`camrelay.relay.sinks.aiortc_internals`.

* **No re-encoding.**  :class:`ForwardTrack` decides which coded unit goes next and with
  which RTP timestamp (``next_unit()``); :mod:`camrelay.relay.sinks.fanout` sends it:
  payloads made once per camera stream, per viewer only the RTP header, SRTP and
  ``sendto``, with its own sender reports, NACK/RTX from the camera's shared payloads and
  PLI handling; aiortc does only SDP, ICE and DTLS (the fan-out is attached as the
  sender's media path, ``aiortc_internals.attach_media_path``).
* **Instant start.**  At join the track sends the stream's cached GOP at once, with RTP
  timestamps compressed (``BURST_STEP`` ticks apart) so that the whole burst *ends* at
  the live unit's timestamp: a browser schedules playout by RTP timestamp, so the joiner
  decodes the GOP and shows the same live picture as everyone else instead of replaying
  it two seconds behind.  Live units follow with ``rtp = pts + offset``.  The fan-out
  paces the burst (``fanout.BURST_SECONDS``), so it does not overflow the viewer, and
  stamps its units with their send times.  When the offer has libwebrtc's playout-delay
  header extension (Chromium's does), the answer takes it
  (``aiortc_internals.answer_playout_delay``) and the fan-out marks the burst "render
  as decoded" (``fanout.PLAYOUT_CATCH_UP``), then live playout again.  A joiner late in
  a long GOP gets only the keyframe (twice) and then the camera's next keyframe, when
  that is nearer than decoding the rest of the GOP (:mod:`~camrelay.relay.sinks.joinwait`,
  ``WebRtcConfig.join_wait``); if it does not come when predicted, the GOP is replayed.
* **PLI/FIR** from a viewer is answered by replaying the *current* GOP (``sub.gop()``)
  retimed the same way, just after the last timestamp sent (``offset`` only ever grows,
  by a few ticks per replay); queued units the replay already covered are skipped by
  ``seq``.  Never an old keyframe followed by live P-frames.  Replays are rate-limited
  (``WebRtcConfig.pli_min_interval``); a request inside the window is served when it ends.
* **Profile.**  aiortc only knows H.264 42001f/42e01f.  We register Main and High with
  aiortc once (``aiortc_internals.register_h264_profiles``) so offers carrying only those are not
  refused, then answer with the offer's payload type and the camera's real
  ``profile-level-id`` (its level may be above the offer's when the offer allows level
  asymmetry).  When the offer has no compatible H.264 (packetization-mode=1, same
  profile), or the camera is not H.264, the session subscribes to
  ``StreamKey(..., transcode=True)``: H.264 made once per camera by the hub.
* **Audio** (:mod:`camrelay.relay.sinks.audio`).  An audio m-line is answered with
  the camera's G.711 when the offer has it (passed through), else Opus made once per
  camera; a camera without audio (or an offer with neither codec, or a viewer of
  camrelay's own H.264) gets ``a=inactive`` as before.  The session tells its view which
  codec it delivered (``View.note_audio``), for the journal.
* **ICE.**  No STUN/TURN unless configured (``RTCConfiguration(iceServers=[])`` is always
  explicit: aiortc otherwise contacts a public STUN server).  aioice offers every local
  address except 127.0.0.1 and has no per-connection knob;
  ``aiortc_internals.install_ice_patches`` wraps it once so that, inside a session's
  set-up (``offering_host_addresses``), only the configured host addresses (IP literals
  or interface names) are offered.  Other users of aioice in the process are not
  affected.
* **Ownership.**  :class:`WebRtcEgress` owns the sessions; a :class:`WebRtcSession` owns
  its peer connection, its subscription, its view and one supervisor task.  ``close()``
  closes the peer connection (stopping aiortc's RTP/RTCP tasks), the subscription and
  the view, and cancels and awaits the supervisor.  ICE failure, a viewer that never
  connects within ``connect_timeout``, the end of the stream and the gate's revocation
  all close the session.
* **Backpressure.**  The bounded per-viewer queue is the hub subscription's (it drops to
  the next keyframe and counts ``sub.dropped``); the fan-out pulls from it only as fast
  as it sends, so a slow viewer never slows another.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NoReturn, Protocol

from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpCodecParameters,
)
from aiortc.mediastreams import MediaStreamError

from camrelay.errors import BadRequest, CamrelayError
from camrelay.relay.hub import StreamClosed
from camrelay.relay.keyframes import KeyframeAsk
from camrelay.relay.media import AccessUnit, AudioInfo, StreamKey, Variant, VideoInfo
from camrelay.relay.peer import take_offer
from camrelay.relay.sinks import aiortc_internals
from camrelay.relay.sinks.audio import (
    OPUS_RATE,
    AudioAnswer,
    AudioSource,
    AudioTranscoders,
    OpusListener,
    PacketTrack,
    choose_audio,
    passthrough_track,
)
from camrelay.relay.sinks.fanout import Fanout, FanoutCounters, FanoutSender
from camrelay.relay.sinks.joinwait import plan_ask, plan_join
from camrelay.tasks import wait_any

if TYPE_CHECKING:
    from camrelay.settings import IceServer, RelaySettings

log = logging.getLogger(__name__)

VIDEO_CLOCK = aiortc_internals.VIDEO_CLOCK
BURST_STEP = 1  # RTP ticks between the units of a (compressed) GOP burst
_START_OFFSET = 10 * VIDEO_CLOCK  # keeps compressed burst timestamps positive


# --------------------------------------------------------------------------- seams

class View(Protocol):
    """The authorised use a session carries (``camrelay.access.gate.View`` has the same
    shape): the session is told when it is revoked and ends it; the web layer reads the
    rest."""

    @property
    def id(self) -> str: ...

    @property
    def manages_camera(self) -> bool: ...

    def on_revoke(self, callback: Callable[[str], Awaitable[None]]) -> None: ...

    def note_audio(self, codec: str) -> None:
        """The session delivers the camera's audio as ``codec`` (for the journal)."""

    async def close(self, reason: str = "ended") -> None: ...


class Subscription(Protocol):
    """What the sink needs of a hub subscription (``camrelay.relay.hub``)."""

    @property
    def info(self) -> VideoInfo: ...

    @property
    def initial_gop(self) -> tuple[AccessUnit, ...]: ...

    @property
    def dropped(self) -> int: ...

    async def get(self) -> AccessUnit:
        """The next live unit; raises ``StreamClosed`` when the stream ends."""

    def gop(self) -> tuple[AccessUnit, ...]:
        """The current cached GOP, keyframe first."""

    @property
    def keyframe_interval(self) -> int | None:
        """The camera's measured keyframe interval (90 kHz ticks); None: not known yet."""

    def ask_keyframe(self) -> KeyframeAsk | None:
        """Ask the camera for a keyframe now: what to wait on; None: it cannot be."""

    @property
    def queued(self) -> int:
        """Live units waiting to be taken."""

    def close(self) -> None: ...

    @property
    def audio_info(self) -> AudioInfo | None:
        """The stream's audio, if it has any camrelay relays."""

    def open_audio(self) -> AudioSource:
        """The stream's audio units in a queue of their own."""


class HubLike(Protocol):
    async def subscribe(self, key: StreamKey, timeout: float = ...) -> Subscription: ...


# --------------------------------------------------------------------------- settings

@dataclass(frozen=True, slots=True)
class WebRtcConfig:
    ice_servers: tuple[IceServer, ...] = ()  # the settings' entries, as they are
    host_addresses: tuple[str, ...] = ()  # IPs or interface names; empty: aioice's default
    join_timeout: float = 5.0  # waiting for the stream to be live
    connect_timeout: float = 15.0  # waiting for ICE + DTLS after the answer
    pli_min_interval: float = 1.0
    # join bursts and GOP replays paced (fanout.CATCH_UP times the camera's
    # rate); False sends them at once, as before (kept for scripts/bench/startup.py)
    pace_bursts: bool = True
    # a burst's units stamped with their send times (fanout.FanoutSender._stamp); False
    # keeps the track's compressed stamps, as before (kept for scripts/bench/startup.py)
    retime_bursts: bool = True
    # answer the viewer's playout-delay header extension (Chromium offers it) and render
    # a burst at once (fanout.FanoutSender); False: not answered, as before (kept for
    # scripts/bench/startup.py)
    playout_delay: bool = True
    # a joiner late in the GOP gets the keyframe, then resumes at the camera's next
    # keyframe when that is due within this many seconds and sooner than the catch-up
    # would take (joinwait.plan_join); 0: always the rest of the GOP, as before
    join_wait: float = 0.75
    # such a joiner asks the camera for a keyframe when the hub can (relay/keyframes.py);
    # False: never (kept for scripts/bench/startup.py's baseline)
    ask_keyframes: bool = True

    @classmethod
    def from_settings(cls, relay: RelaySettings) -> WebRtcConfig:
        return cls(
            ice_servers=tuple(relay.ice_servers),
            host_addresses=tuple(relay.ice_host_addresses),
            join_timeout=relay.join_timeout,
            join_wait=relay.join_wait_seconds,
        )


# --------------------------------------------------------------------------- ICE host addresses

def resolve_host_addresses(entries: Iterable[str]) -> tuple[str, ...]:
    """IP literals as given; interface names replaced by their addresses."""
    import ipaddress

    import ifaddr

    adapters = None
    out: list[str] = []
    for entry in entries:
        try:
            out.append(str(ipaddress.ip_address(entry)))
            continue
        except ValueError:
            pass
        if adapters is None:
            adapters = list(ifaddr.get_adapters())
        found = [a for a in adapters if a.nice_name == entry or a.name == entry]
        if not found:
            raise CamrelayError(f"ICE host address {entry!r} is neither an IP nor an interface")
        for adapter in found:
            for ip in adapter.ips:
                if isinstance(ip.ip, str):
                    out.append(ip.ip)
                elif ip.ip[2] == 0:  # IPv6 without scope id
                    out.append(ip.ip[0])
    return tuple(dict.fromkeys(out))


# --------------------------------------------------------------------------- H.264 negotiation

_H264_FEEDBACK = ("nack", "nack pli", "goog-remb")


def camera_profile_level_id(info: VideoInfo) -> str | None:
    if info.profile_level_id and len(info.profile_level_id) == 6:
        return info.profile_level_id.lower()
    if info.sps and len(info.sps) >= 4:
        sps = info.sps
        while sps.startswith(b"\x00"):
            sps = sps[1:]
        if sps.startswith(b"\x01"):
            sps = sps[1:]
        if len(sps) >= 4 and sps[0] & 0x1F == 7:
            return sps[1:4].hex()
    return None


def choose_h264(offered: Sequence[RTCRtpCodecParameters], info: VideoInfo
                ) -> list[RTCRtpCodecParameters] | None:
    """The answer's codecs (H.264 with the camera's profile-level-id, plus its RTX), or
    ``None`` when no offered H.264 can carry the camera's stream as is."""
    if info.codec != "h264":
        return None
    plid = camera_profile_level_id(info)
    chosen: RTCRtpCodecParameters | None = None
    answer_plid = plid
    for codec in offered:
        if codec.mimeType.lower() != "video/h264":
            continue
        params = codec.parameters
        if str(params.get("packetization-mode", "0")) != "1":
            continue
        offered_plid = str(params.get("profile-level-id", "42e01f")).lower()
        if plid is None:  # nothing known about the camera: take the first usable one
            chosen, answer_plid = codec, offered_plid
            break
        try:
            cam_profile, cam_level = aiortc_internals.h264_profile(plid)
            off_profile, off_level = aiortc_internals.h264_profile(offered_plid)
        except ValueError:
            continue
        asymmetric = str(params.get("level-asymmetry-allowed", "0")) == "1"
        if cam_profile != off_profile or (not asymmetric and off_level < cam_level):
            continue
        chosen = codec
        break
    if chosen is None or answer_plid is None:
        return None
    answer = copy.deepcopy(chosen)
    answer.parameters = {
        **({"level-asymmetry-allowed": 1}
           if str(chosen.parameters.get("level-asymmetry-allowed", "0")) == "1" else {}),
        "packetization-mode": 1,
        "profile-level-id": answer_plid,
    }
    answer.rtcpFeedback = [fb for fb in chosen.rtcpFeedback
                           if (fb.type + (" " + fb.parameter if fb.parameter else ""))
                           in _H264_FEEDBACK]
    out = [answer]
    for codec in offered:
        if codec.mimeType.lower() == "video/rtx" and \
                str(codec.parameters.get("apt")) == str(chosen.payloadType):
            out.append(copy.deepcopy(codec))
            break
    return out


# --------------------------------------------------------------------------- the track

@dataclass(slots=True)
class SessionCounters:
    units_sent: int = 0
    bytes_sent: int = 0
    bursts: int = 0
    burst_units: int = 0
    keyframe_requests: int = 0
    replays: int = 0
    stale_skipped: int = 0
    waited_keyframe: int = 0
    join_waits: int = 0  # joins sent the keyframe, then resumed at the next one
    join_wait_replays: int = 0  # ... whose predicted keyframe did not come: GOP replayed
    keyframes_asked: int = 0  # ... of them waiting for a keyframe asked of the camera


class ForwardTrack(MediaStreamTrack):
    """A video track whose coded units the fan-out takes (``next_unit()``); aiortc's
    sender carries it only for the SDP (its media path never starts)."""

    kind = "video"

    def __init__(self, sub: Subscription, counters: SessionCounters, label: str,
                 pli_min_interval: float, on_first: Callable[[float], None] | None = None,
                 join_wait: float = 0.0, ask_keyframes: bool = True) -> None:
        super().__init__()
        self._join_wait = join_wait  # seconds (joinwait.plan_join); 0: always the burst
        self._ask = sub.ask_keyframe if ask_keyframes else None  # the camera, for a keyframe
        self._wait_deadline: int | None = None  # pts by which the waited keyframe is due
        self._asked: KeyframeAsk | None = None  # ... when asked of the camera
        self._on_first = on_first  # called once with the monotonic time of the first unit
        self._sub = sub
        self._counters = counters
        self._label = label
        self._pli_min_interval = pli_min_interval
        self._pending: list[tuple[AccessUnit, int]] = []  # (unit, rtp timestamp)
        self._need_burst = True
        self._first = True
        self._replay_requested = False
        self._next_replay = 0.0
        self._offset = _START_OFFSET
        self._last_ts: int | None = None
        self._last_seq = -1
        self._waiting_keyframe = False
        self.ended = asyncio.Event()
        self.first_sent = asyncio.Event()
        self.first_sent_at: float | None = None

    def request_keyframe(self) -> None:
        """Called (via the fan-out) when the viewer sends PLI or FIR."""
        self._counters.keyframe_requests += 1
        self._replay_requested = True

    def _burst(self, units: Sequence[AccessUnit], last: AccessUnit | None = None) -> None:
        """Queue ``units`` (keyframe first) with compressed timestamps ending at live time
        (that of ``last``, the newest unit, by default the last of ``units``)."""
        last = units[-1] if last is None else last
        n = len(units)
        if self._last_ts is not None:
            self._offset = max(self._offset, self._last_ts + 1 + (n - 1) * BURST_STEP - last.pts)
        end = last.pts + self._offset
        self._pending = [(u, end - (n - 1 - i) * BURST_STEP) for i, u in enumerate(units)]
        self._last_seq = last.seq
        self._counters.bursts += 1
        self._counters.burst_units += n

    def _try_burst(self, *, replay: bool) -> bool:
        gop = self._sub.gop()
        if not gop and self._first:
            gop = self._sub.initial_gop
        if gop and gop[0].keyframe and gop[-1].seq >= self._last_seq:
            plan = None if replay else plan_join(gop, self._sub.keyframe_interval,
                                                 self._pixels(), self._join_wait,
                                                 self._ask)
            if plan is not None:
                # the keyframe now, twice (a receiver that, like aiortc's, completes a
                # frame only when the next one starts would otherwise show the first
                # picture only with the next keyframe), stamped at the live time so that
                # the next keyframe follows at its real distance; nothing more of this
                # GOP, then live from the camera's next keyframe
                self._burst((gop[0], gop[0]), last=gop[-1])
                self._waiting_keyframe = True
                self._wait_deadline = plan.deadline
                self._asked = plan.asked
                self._counters.join_waits += 1
                self._counters.keyframes_asked += plan.asked is not None
                log.debug("[%s] joining at the %s keyframe, due in %.2f s", self._label,
                          "asked" if plan.asked else "next", plan.due)
                return True
            self._burst(gop)
            if replay:
                self._counters.replays += 1
            return True
        # nothing usable cached: wait for the next keyframe from the live queue
        self._waiting_keyframe = True
        self._counters.waited_keyframe += 1
        return False

    def _pixels(self) -> int:
        try:
            info = self._sub.info
        except StreamClosed:  # ended meanwhile: the next get() says so
            return 0
        return info.width * info.height

    def _take(self, unit: AccessUnit, ts: int) -> tuple[AccessUnit, int]:
        self._last_ts = ts
        self._counters.units_sent += 1
        self._counters.bytes_sent += len(unit.data)
        if self._first:
            self._first = False
            self.first_sent_at = time.monotonic()
            self.first_sent.set()
            if self._on_first is not None:
                self._on_first(self.first_sent_at)
        return unit, ts

    def skip_to_keyframe(self) -> None:
        """Drop what is queued and send nothing until the next live keyframe (asked of
        the camera when it can be: its own next one may be seconds away)."""
        self._pending.clear()
        if not self._waiting_keyframe:
            self._waiting_keyframe = True
            self._counters.waited_keyframe += 1
            if self._ask is not None and (asked := self._ask()) is not None:
                self._asked = asked  # no deadline: whichever keyframe comes first
                self._counters.keyframes_asked += 1

    def _ask_instead_of_replay(self) -> bool:
        """A keyframe request (PLI, FIR) answered by asking the camera for a fresh
        keyframe rather than replaying a GOP that would be long to decode; the GOP is
        replayed if the camera's keyframe does not come (``JoinWait.deadline``)."""
        plan = plan_ask(self._sub.gop(), self._pixels(), self._ask)
        if plan is None:
            return False
        self._pending.clear()
        self._waiting_keyframe = True
        self._wait_deadline, self._asked = plan.deadline, plan.asked
        self._counters.keyframes_asked += 1
        return True

    @property
    def bursting(self) -> bool:
        return bool(self._pending)

    @property
    def pending_bytes(self) -> int:
        return sum(len(unit.data) for unit, _ in self._pending)

    @property
    def queued(self) -> int:
        return len(self._pending) + self._sub.queued

    async def recv(self) -> NoReturn:
        """Not a media source for aiortc: the fan-out sends (``next_unit()``)."""
        raise MediaStreamError

    async def next_unit(self) -> tuple[AccessUnit, int]:
        """The next unit to send and its RTP timestamp (before the sender's origin)."""
        if self.readyState != "live":
            raise MediaStreamError
        if self._need_burst:
            self._need_burst = False
            self._try_burst(replay=False)
        elif self._replay_requested and time.monotonic() >= self._next_replay:
            self._replay_requested = False
            self._next_replay = time.monotonic() + self._pli_min_interval
            if self._ask_instead_of_replay():
                log.debug("[%s] keyframe requested: asked the camera", self._label)
            else:
                log.debug("[%s] keyframe requested: replaying the current GOP", self._label)
                self._try_burst(replay=True)
        if self._pending:
            unit, ts = self._pending.pop(0)
            return self._take(unit, ts)
        while True:
            try:
                unit = await self._sub.get()
            except StreamClosed as err:
                log.info("[%s] stream ended: %s", self._label, err.detail)
                self.ended.set()
                self.stop()
                raise MediaStreamError from err
            if unit.seq <= self._last_seq:
                self._counters.stale_skipped += 1
                continue
            if self._waiting_keyframe:
                if not unit.keyframe:
                    if self._wait_deadline is not None and (
                            unit.pts > self._wait_deadline
                            or (self._asked is not None and self._asked.failed)):
                        # the camera's keyframe did not come when predicted (its GOP
                        # changed), or the camera was asked in vain: what a keyframe
                        # request gets, a replay of the GOP
                        log.debug("[%s] no keyframe when predicted: replaying the GOP",
                                  self._label)
                        self._waiting_keyframe = False
                        self._wait_deadline = self._asked = None
                        self._counters.join_wait_replays += 1
                        self._replay_requested = False
                        self._next_replay = time.monotonic() + self._pli_min_interval
                        if self._try_burst(replay=True):
                            unit, ts = self._pending.pop(0)
                            return self._take(unit, ts)
                    continue
                self._waiting_keyframe = False
                self._wait_deadline = self._asked = None
                self._replay_requested = False  # the keyframe answers a pending request
            self._last_seq = unit.seq
            ts = unit.pts + self._offset
            if self._last_ts is not None and ts <= self._last_ts:
                self._offset += self._last_ts + 1 - ts
                ts = self._last_ts + 1
            return self._take(unit, ts)


# --------------------------------------------------------------------------- sessions

@dataclass(slots=True)
class AudioPath:
    """One viewer's audio: the answer, the track aiortc's sender reads, and what releases
    the camera's audio (its queue, or the viewer's place at the Opus transcoder)."""

    answer: AudioAnswer
    track: PacketTrack
    release: Callable[[], Awaitable[None]]

    async def close(self) -> None:
        self.track.stop()
        release, self.release = self.release, _nothing
        await release()


async def _nothing() -> None:
    return None


CloseCallback = Callable[["WebRtcSession"], None]


@dataclass(frozen=True, slots=True)
class SessionInfo:
    id: str
    camera_id: int
    variant: Variant
    transcoded: bool
    profile_level_id: str | None
    connection_state: str
    dropped: int
    counters: SessionCounters = field(default_factory=SessionCounters)
    fanout: FanoutCounters | None = None


VIEWER_DELETE_GRACE = 1.0  # seconds a viewer's DELETE may trail its DTLS close


class WebRtcSession:
    """One viewer: a peer connection fed from one hub subscription."""

    def __init__(self, session_id: str, key: StreamKey, sub: Subscription,
                 pc: RTCPeerConnection, track: ForwardTrack, counters: SessionCounters,
                 view: View | None, config: WebRtcConfig, on_closed: CloseCallback,
                 profile_level_id: str | None, owner: int | None = None,
                 fanout: FanoutSender | None = None,
                 on_fanout_stopped: Callable[[], None] | None = None,
                 audio: AudioPath | None = None) -> None:
        self.id = session_id
        self.audio = audio
        self.fanout = fanout
        self._on_fanout_stopped = on_fanout_stopped
        self.etag = secrets.token_hex(8)  # identifies the ICE session (no restarts yet)
        self.owner = owner
        self.key = key
        self.sub = sub
        self.pc = pc
        self.track = track
        self.counters = counters
        self.view = view
        self.profile_level_id = profile_level_id
        self.created = time.monotonic()
        self.requested = self.created  # when the offer came (set by the egress)
        self.closed = asyncio.Event()
        self.connected = asyncio.Event()
        self._failed = asyncio.Event()
        self._config = config
        self._on_closed = on_closed
        self._closing = False
        self._close_reason = "ended"
        self._supervisor: asyncio.Task[None] | None = None
        self.label = f"session {session_id[:8]} camera {key}"

        @pc.on("connectionstatechange")
        def _state() -> None:
            state = pc.connectionState
            log.debug("[%s] connection %s", self.label, state)
            if state == "connected":
                self.connected.set()
            elif state in ("failed", "closed"):
                self._failed.set()

    def start(self) -> None:
        self._supervisor = asyncio.get_running_loop().create_task(
            self._supervise(), name=f"camrelay-webrtc-{self.id[:8]}")
        if self.view is not None:
            self.view.on_revoke(self._revoked)

    async def _revoked(self, reason: str) -> None:
        log.info("[%s] view revoked: %s", self.label, reason)
        await self.close(f"revoked: {reason}")

    async def _supervise(self) -> None:
        try:
            await asyncio.wait_for(wait_any(self.connected, self._failed,
                                                  self.track.ended),
                                   self._config.connect_timeout)
        except TimeoutError:
            reason = "viewer did not connect"
        else:
            if self.connected.is_set() and not self._failed.is_set():
                await wait_any(self._failed, self.track.ended)
            reason = "stream ended" if self.track.ended.is_set() else "ICE/DTLS failed"
            if self.pc.connectionState == "closed" and not self.track.ended.is_set():
                # the viewer shut DTLS down in order: a page that leaves sends its WHEP
                # DELETE first, but that request can arrive after the close alert; its
                # reason (the viewer ended it) wins if it comes within the grace
                try:
                    await asyncio.wait_for(self.closed.wait(), VIEWER_DELETE_GRACE)
                    return
                except TimeoutError:
                    reason = "connection closed by viewer"
        log.info("[%s] closing: %s", self.label, reason)
        await self.close(reason)

    @property
    def time_to_first_media(self) -> float | None:
        """Seconds from the offer to the first unit handed to aiortc (None: not yet)."""
        sent = self.track.first_sent_at
        return None if sent is None else sent - self.requested

    def info(self) -> SessionInfo:
        return SessionInfo(self.id, self.key.camera_id, self.key.variant, self.key.transcode,
                           self.profile_level_id, self.pc.connectionState, self.sub.dropped,
                           copy.copy(self.counters),
                           None if self.fanout is None else copy.copy(self.fanout.counters))

    async def close(self, reason: str = "ended") -> None:
        """Release everything (idempotent)."""
        if self._closing:
            await self.closed.wait()
            return
        self._closing = True
        self._close_reason = reason
        self._on_closed(self)
        try:
            task = self._supervisor
            if task is not None and task is not asyncio.current_task():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            if self.fanout is not None:
                try:
                    await self.fanout.stop()
                finally:
                    if self._on_fanout_stopped is not None:
                        self._on_fanout_stopped()
                        self._on_fanout_stopped = None
            try:
                await self.pc.close()
            except Exception:  # aiortc teardown must not keep the rest from closing
                log.exception("[%s] peer connection close failed", self.label)
            self.track.stop()
            if self.audio is not None:
                await self.audio.close()
            self.sub.close()
            if self.view is not None:
                await self.view.close(reason)
        finally:
            log.info("[%s] closed (%s): sent %d units, %d bursts, %d replays, %d dropped",
                     self.label, reason, self.counters.units_sent, self.counters.bursts,
                     self.counters.replays, self.sub.dropped)
            self.closed.set()


class WebRtcEgress:
    """Owner of every WebRTC session of the process."""

    def __init__(self, hub: HubLike, config: WebRtcConfig,
                 observe_first_media: Callable[[float], None] | None = None) -> None:
        self.hub = hub
        self.config = config
        self._sessions: dict[str, WebRtcSession] = {}
        self._observe_first_media = observe_first_media  # offer-to-first-media seconds
        self._bytes_sent_ended = 0  # by sessions that ended: the total never falls
        self._host_addresses = (resolve_host_addresses(config.host_addresses)
                                if config.host_addresses else None)
        self.fanout = Fanout()
        self.audio = AudioTranscoders()  # Opus, once per camera
        aiortc_internals.install_ice_patches()
        aiortc_internals.install_lazy_bitrate_estimator()
        aiortc_internals.register_h264_profiles()

    def __len__(self) -> int:
        return len(self._sessions)

    def get(self, session_id: str) -> WebRtcSession | None:
        return self._sessions.get(session_id)

    def sessions(self) -> list[WebRtcSession]:
        return list(self._sessions.values())

    def _rtc_configuration(self) -> RTCConfiguration:
        servers = [RTCIceServer(urls=list(s.urls), username=s.username,
                                credential=s.credential) for s in self.config.ice_servers]
        return RTCConfiguration(iceServers=servers)  # never None: no default STUN

    async def start_session(self, camera_id: int, variant: Variant, offer_sdp: str,
                            view: View | None = None, owner: int | None = None
                            ) -> tuple[WebRtcSession, str]:
        """Subscribe, negotiate and return the session and its SDP answer.

        Raises ``BadRequest`` for offers aiortc cannot use and whatever the hub raises
        (``SourceUnavailable``, ``CameraNotFound``).  On failure nothing is left open
        except ``view``, which stays the caller's.
        """
        requested = time.monotonic()
        offer = aiortc_internals.parse_offer(offer_sdp)
        offered = offer.video_codecs
        key = StreamKey(camera_id, variant, transcode=False)
        sub = await self.hub.subscribe(key, timeout=self.config.join_timeout)
        try:
            answer_codecs = choose_h264(offered, sub.info)
            if answer_codecs is None:
                sub.close()
                key = StreamKey(camera_id, variant, transcode=True)
                log.info("[camera %s] viewer cannot take the camera's %s %s: transcoding",
                         camera_id, sub.info.codec, sub.info.profile_level_id or "")
                sub = await self.hub.subscribe(key, timeout=self.config.join_timeout)
                answer_codecs = choose_h264(offered, sub.info)
                if answer_codecs is None:
                    raise BadRequest("the offer has no H.264 with packetization-mode=1 "
                                     f"for profile {camera_profile_level_id(sub.info)}")
        except BaseException:
            sub.close()
            raise
        audio: AudioAnswer | None = None
        if offer.has_audio:
            # camrelay's own H.264 carries no audio: its viewers get video only
            audio = None if key.transcode else choose_audio(offer.audio_codecs, sub.audio_info)
            if audio is None:
                info = None if key.transcode else sub.audio_info
                log.info("[camera %s] audio answered inactive (%s)", camera_id,
                         "the camera sends none camrelay relays" if info is None
                         else f"the offer has neither {info.codec} nor Opus")
        session, answer = await self._negotiate(key, sub, offer, offer_sdp, answer_codecs,
                                                view, owner, requested, audio)
        return session, answer

    def _audio_path(self, key: StreamKey, sub: Subscription, answer: AudioAnswer
                    ) -> AudioPath:
        """The camera's audio for one viewer: its G.711 (or a field device's Opus) as
        is, or the camera's Opus."""
        if answer.mode == "passthrough":
            source = sub.open_audio()

            async def close_source() -> None:
                source.close()

            return AudioPath(answer, passthrough_track(source, answer.codec.clockRate),
                             close_source)
        info = sub.audio_info
        assert info is not None  # choose_audio answered only because there is audio
        listener: OpusListener = self.audio.listen(key, info, sub.open_audio)
        return AudioPath(answer, PacketTrack(listener.get, OPUS_RATE),
                         functools.partial(self.audio.release, listener))

    async def _negotiate(self, key: StreamKey, sub: Subscription,
                         offer: aiortc_internals.Offer, offer_sdp: str,
                         answer_codecs: list[RTCRtpCodecParameters], view: View | None,
                         owner: int | None, requested: float,
                         audio_answer: AudioAnswer | None = None
                         ) -> tuple[WebRtcSession, str]:
        session_id = secrets.token_hex(16)
        counters = SessionCounters()
        label = f"session {session_id[:8]} camera {key}"
        observe = self._observe_first_media
        on_first = None if observe is None else (lambda at: observe(at - requested))
        track = ForwardTrack(sub, counters, label, self.config.pli_min_interval, on_first,
                             self.config.join_wait, self.config.ask_keyframes)
        pc = RTCPeerConnection(self._rtc_configuration())
        fanout: FanoutSender | None = None
        release: Callable[[], None] | None = None
        audio: AudioPath | None = None
        try:
            with aiortc_internals.offering_host_addresses(self._host_addresses):
                await take_offer(pc, offer_sdp)
                video = next((t for t in pc.getTransceivers() if t.kind == "video"), None)
                if video is None:
                    raise BadRequest("the SDP offer has no video m-line")
                # the camera's profile-level-id, not aiortc's
                aiortc_internals.set_answer_codecs(video, answer_codecs)
                if self.config.playout_delay:
                    aiortc_internals.answer_playout_delay(video, offer)
                video.sender.replaceTrack(track)
                video.direction = "sendonly"
                packetizer = self.fanout.acquire(key)
                release = functools.partial(self.fanout.release, packetizer)
                fanout = FanoutSender(track, packetizer, session_id[:8],
                                      pace=self.config.pace_bursts,
                                      retime=self.config.retime_bursts)
                # the peer connection starts the sender once DTLS is up: the fan-out
                # sends; a keyframe request replays the GOP
                aiortc_internals.attach_media_path(video, fanout, track.request_keyframe)
                sound = next((t for t in pc.getTransceivers() if t.kind == "audio"), None)
                if audio_answer is not None and sound is not None:
                    # aiortc's own sender: its SSRC, SRTP and sender reports
                    audio = self._audio_path(key, sub, audio_answer)
                    aiortc_internals.set_answer_codecs(sound, [audio_answer.codec])
                    sound.sender.replaceTrack(audio.track)
                    sound.direction = "sendonly"
                answer = await pc.createAnswer()
                await pc.setLocalDescription(answer)
        except BaseException:
            track.stop()
            await pc.close()
            if fanout is not None:
                await fanout.stop()
            if release is not None:
                release()
            if audio is not None:
                await audio.close()
            sub.close()
            raise
        plid = str(answer_codecs[0].parameters.get("profile-level-id"))
        session = WebRtcSession(session_id, key, sub, pc, track, counters, view, self.config,
                                self._forget, plid, owner, fanout, release, audio)
        session.requested = requested
        self._sessions[session_id] = session
        session.start()
        if audio is not None and view is not None:
            view.note_audio(audio.answer.name)
        log.info("[%s] started (profile %s, audio %s)", label, plid,
                 "inactive" if audio is None else f"{audio.answer.name} {audio.answer.mode}")
        return session, pc.localDescription.sdp

    def _forget(self, session: WebRtcSession) -> None:
        if self._sessions.pop(session.id, None) is not None:
            self._bytes_sent_ended += session.counters.bytes_sent

    def bytes_sent_total(self) -> int:
        """Media bytes handed to viewers since start, by ended and live sessions."""
        return self._bytes_sent_ended + sum(s.counters.bytes_sent for s in self._sessions.values())

    async def close_session(self, session_id: str, reason: str = "ended") -> bool:
        session = self._sessions.get(session_id)
        if session is None:
            return False
        await session.close(reason)
        return True

    async def close(self) -> None:
        """Close every session (application shutdown)."""
        sessions = list(self._sessions.values())
        await asyncio.gather(*(s.close("shutdown") for s in sessions), return_exceptions=True)
        await self.audio.close()

