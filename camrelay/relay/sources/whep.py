"""The ``whep+http://`` / ``whep+https://`` source: a camera pulled from another camrelay.

A camera of a lower camrelay (province ← city ← county) has the address
``whep+http://host:port/whep/<camera id>`` (any query, e.g. ``?purpose=…``, is passed on)
and, as its password, the bearer token the lower side issued to this relay.  One
:meth:`WhepSource.run` is one WHEP session (RFC 9725) at the lower camrelay, whatever the
number of viewers here: the hub runs one source per camera stream.

* **The offer.**  An aiortc peer connection with one ``recvonly`` video transceiver
  offering H.264 only (Main and High registered, so the lower answers with its camera's
  own ``profile-level-id``) and one ``recvonly`` audio transceiver offering Opus, PCMU
  and PCMA; the ICE servers and host addresses of the egress (``[relay]``; no STUN
  unless configured).
* **Audio.**  Whatever the lower answers on the audio m-line (its camera's G.711 passed
  through, or the Opus it made once from the camera's AAC; ``inactive`` for a camera
  without audio) is tapped like the video, undecoded, and goes into the stream's audio
  path as that codec (:func:`answered_audio`), so viewers here get it as they would a
  local camera's.  The pull always asks for audio: it is one session per camera whatever
  the viewers here ask, and a viewer may ask for audio after it started.
* **HTTP.**  ``POST`` with ``Content-Type: application/sdp`` and
  ``Authorization: Bearer <password>``; a ``307``/``308`` (a lower cluster's node, whose
  ``Location`` carries a one-use ticket) is followed here, with the same Authorization,
  at most :data:`MAX_REDIRECTS` times.  The ``201``'s ``Location`` is the session, which
  gets a ``DELETE`` when the source stops.
* **No re-encoding.**  The receiver is tapped before decoding
  (``aiortc_internals.tap_encoded_frames``): the lower's H.264 access units go into the
  stream as Annex-B with SPS/PPS in front of each keyframe (:class:`.whip.Feed`).  The
  lower sends its cached GOP first (its instant start), so no keyframe is asked for
  unless non-keyframes come while the stream waits for one (a PLI, rate-limited).
* **Failures** raise :class:`SourceUnavailable` with a reason, and the stream's
  reconnect policy retries on its backoff (except that a live session the lower closes in
  order, as it does on a revocation or a restart, is followed by a new POST at once, in
  the same run, so that a refusal is learnt without waiting for a backoff step): ``401``/``403``/``404`` raise
  :class:`~camrelay.errors.SourceRefused` (reasons ``auth`` / ``not_found``), which also
  ends the stream's viewers (a revoked credential at the lower level cuts the viewers
  here), and so does a ``503`` that says ``"refused": true`` (the lower was refused by
  the level below it: a chain cuts every level); ``409`` ``no_stream``; other ``503``
  the lower's own reason; ICE/DTLS failure, the
  lower closing the session, and no frame for ``read_timeout`` seconds ``unreachable`` /
  ``timeout``.
* **Secrets.**  The token is never logged, never in an SDP, never in an error; URLs are
  shown without user-info or query (:func:`shown_url`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import aiohttp
from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpTransceiver,
    RTCSessionDescription,
)

from camrelay.errors import SourceRefused, SourceUnavailable
from camrelay.redact import redact_text
from camrelay.relay.media import AudioInfo
from camrelay.relay.sinks import aiortc_internals
from camrelay.relay.sinks.webrtc import WebRtcConfig, resolve_host_addresses
from camrelay.relay.sources.whip import OPUS, Feed
from camrelay.relay.stream import SourceSpec, UnitSink
from camrelay.tasks import wait_any

log = logging.getLogger(__name__)

SCHEMES = ("whep+http://", "whep+https://")
SDP_TYPE = "application/sdp"
MAX_REDIRECTS = 5
DELETE_TIMEOUT = 2.0  # seconds for the session's DELETE when the source stops
KNOWN_REASONS = ("unreachable", "timeout", "no_video", "unsupported", "disabled",
                 "no_stream", "no_publisher")
AUDIO = {"pcma": AudioInfo("PCMA", 8000), "pcmu": AudioInfo("PCMU", 8000), "opus": OPUS}
"""The audio codecs offered to the lower, by lower-case name, as the stream carries them."""


def http_url(url: str) -> str:
    """``whep+http(s)://…`` → ``http(s)://…`` (user-info dropped)."""
    parts = urlsplit(url.removeprefix("whep+"))
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


def shown_url(url: str) -> str:
    """An address for logs and errors: no user-info, no query (a ticket may be in it)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


class ClosedByLower(SourceUnavailable):
    """The lower ended the session in order (DTLS close); ``delivered``: after video."""

    def __init__(self, detail: str, *, delivered: bool) -> None:
        super().__init__(detail, reason="unreachable")
        self.delivered = delivered


class WhepSources:
    """Makes the :class:`WhepSource` of a spec with the egress's ICE settings."""

    def __init__(self, config: WebRtcConfig) -> None:
        self.config = config
        self._host_addresses: tuple[str, ...] | None = None
        self._resolved = False

    def host_addresses(self) -> tuple[str, ...] | None:
        if not self._resolved:
            self._host_addresses = (resolve_host_addresses(self.config.host_addresses)
                                    if self.config.host_addresses else None)
            self._resolved = True
        return self._host_addresses

    def source(self, spec: SourceSpec) -> WhepSource:
        aiortc_internals.install_ice_patches()
        aiortc_internals.register_h264_profiles()
        return WhepSource(spec, self.config, self.host_addresses())


class WhepSource:
    """One WHEP session at a time at the lower camrelay; see the module doc."""

    def __init__(self, spec: SourceSpec, config: WebRtcConfig,
                 host_addresses: tuple[str, ...] | None) -> None:
        self.spec = spec
        self.config = config
        self.host_addresses = host_addresses
        self.url = http_url(spec.url)
        self.label = f"whep {shown_url(self.url)}"
        self._pli: asyncio.Task[bool] | None = None

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": SDP_TYPE}
        if self.spec.password:
            headers["Authorization"] = f"Bearer {self.spec.password}"
        return headers

    def _error_text(self, text: str) -> str:
        return redact_text(text, self.spec.password)

    async def run(self, sink: UnitSink) -> None:
        async with aiohttp.ClientSession() as http:
            while True:
                try:
                    await self._session(http, sink)
                except ClosedByLower as closed:
                    if not closed.delivered:
                        raise
                    # the lower ended a live session in order (a revocation, a restart):
                    # ask again at once to learn why, instead of after a backoff step
                    log.info("[%s] the lower closed the session: posting again",
                             self.label)

    async def _session(self, http: aiohttp.ClientSession, sink: UnitSink) -> None:
        servers = [RTCIceServer(urls=list(s.urls), username=s.username,
                                credential=s.credential) for s in self.config.ice_servers]
        pc = RTCPeerConnection(RTCConfiguration(iceServers=servers))  # never None: no STUN
        failed = asyncio.Event()
        connected = asyncio.Event()

        @pc.on("connectionstatechange")
        def _state() -> None:
            if pc.connectionState == "connected":
                connected.set()
            elif pc.connectionState in ("failed", "closed"):
                failed.set()

        receiver: list[RTCRtpReceiver] = []
        feed = Feed(0, lambda: self._request_keyframe(receiver), keyframe_interval=None,
                    keyframe_on_bind=False)
        location: str | None = None
        try:
            video = pc.addTransceiver("video", direction="recvonly")
            _prefer_h264(video)
            aiortc_internals.tap_encoded_frames(video.receiver, feed.push)
            receiver.append(video.receiver)
            sound = pc.addTransceiver("audio", direction="recvonly")
            _prefer_audio(sound)
            aiortc_internals.tap_encoded_frames(sound.receiver, feed.push_audio)
            with aiortc_internals.offering_host_addresses(self.host_addresses):
                await pc.setLocalDescription(await pc.createOffer())
            answer, location = await self._post(http, pc.localDescription.sdp)
            try:
                await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
                feed.audio = answered_audio(answer)
            except Exception as err:  # aiortc raises anything on an SDP it refuses
                raise SourceUnavailable(f"{self.label}: the answer was refused: "
                                        f"{type(err).__name__}", reason="unsupported"
                                        ) from err
            log.info("[%s] audio: %s", self.label,
                     "none" if feed.audio is None else feed.audio.codec)
            feed.bind(sink)
            await self._watch(pc, connected, failed, feed)
        finally:
            feed.end()
            if self._pli is not None:
                self._pli.cancel()
                await asyncio.gather(self._pli, return_exceptions=True)
            await pc.close()
            if location is not None:
                await self._delete(http, location)

    async def _watch(self, pc: RTCPeerConnection, connected: asyncio.Event,
                     failed: asyncio.Event, feed: Feed) -> None:
        """Return never; raise when the session is lost or silent."""
        try:
            async with asyncio.timeout(self.spec.connect_timeout + self.config.connect_timeout):
                await wait_any(connected, failed)
        except TimeoutError:
            raise SourceUnavailable(f"{self.label}: ICE/DTLS did not connect",
                                    reason="timeout") from None
        seen = -1
        while not failed.is_set():
            if feed.units == seen:
                raise SourceUnavailable(f"{self.label}: no video for "
                                        f"{self.spec.read_timeout:g} s", reason="timeout")
            seen = feed.units
            try:
                async with asyncio.timeout(self.spec.read_timeout):
                    await failed.wait()
            except TimeoutError:
                continue
        if pc.connectionState == "closed":
            raise ClosedByLower(f"{self.label}: the lower closed the session",
                                delivered=feed.keyframes > 0)
        raise SourceUnavailable(f"{self.label}: ICE/DTLS failed", reason="unreachable")

    def _request_keyframe(self, receiver: Sequence[RTCRtpReceiver]) -> None:
        if not receiver or (self._pli is not None and not self._pli.done()):
            return
        self._pli = asyncio.get_running_loop().create_task(
            aiortc_internals.request_picture(receiver[0]), name="camrelay-whep-pli")

    async def _post(self, http: aiohttp.ClientSession, offer: str) -> tuple[str, str]:
        """The answer and the session's absolute URL, following redirects."""
        url = self.url
        for _ in range(MAX_REDIRECTS + 1):
            try:
                async with asyncio.timeout(self.spec.connect_timeout):
                    async with http.post(url, data=offer.encode(), headers=self._headers(),
                                         allow_redirects=False) as resp:
                        status = resp.status
                        body = await resp.read()
                        headers = resp.headers
            except (aiohttp.ClientError, OSError) as err:
                raise SourceUnavailable(f"{self.label}: {self._error_text(str(err)) or type(err).__name__}",
                                        reason="unreachable") from None
            except TimeoutError:
                raise SourceUnavailable(f"{self.label}: no answer within "
                                        f"{self.spec.connect_timeout:g} s",
                                        reason="timeout") from None
            if status in (307, 308) and "Location" in headers:
                url = urljoin(url, headers["Location"])
                log.debug("[%s] offer redirected to %s", self.label, shown_url(url))
                continue
            if status == 201:
                location = headers.get("Location")
                if not location or headers.get("Content-Type", "").split(";")[0] != SDP_TYPE:
                    raise SourceUnavailable(f"{self.label}: a 201 without an SDP answer "
                                            "and a Location", reason="unsupported")
                session = urljoin(url, location)
                log.info("[%s] session %s started", self.label,
                         urlsplit(session).path.rsplit("/", 1)[-1][:8])
                return body.decode(errors="replace"), session
            raise self._refusal(status, body, headers)
        raise SourceUnavailable(f"{self.label}: more than {MAX_REDIRECTS} redirects",
                                reason="unreachable")

    def _refusal(self, status: int, body: bytes, headers: Any) -> SourceUnavailable:
        problem = _problem(body)
        detail = self._error_text(str(problem.get("detail") or ""))[:200]
        said = f"{self.label}: {status}" + (f" ({detail})" if detail else "")
        if status in (401, 403):
            return SourceRefused(f"{said}: the upstream refuses this relay's token",
                                 reason="auth")
        if status == 404:
            return SourceRefused(f"{said}: the upstream does not serve this camera",
                                 reason="not_found")
        if status == 409:
            return SourceUnavailable(said, reason="no_stream", retry_after=60)
        if status in (502, 503, 504):
            reason = problem.get("reason")
            if problem.get("refused") is True and reason in ("auth", "not_found"):
                # the lower was itself refused by the level below it: pass it on
                return SourceRefused(f"{said}: refused below", reason=str(reason))
            retry = headers.get("Retry-After", "")
            return SourceUnavailable(
                said, reason=reason if reason in KNOWN_REASONS else "unreachable",
                retry_after=int(retry) if retry.isdigit() else 5)
        if 400 <= status < 500:
            return SourceUnavailable(said, reason="unsupported", retry_after=60)
        return SourceUnavailable(said, reason="unreachable")

    async def _delete(self, http: aiohttp.ClientSession, session: str) -> None:
        headers = self._headers()
        headers.pop("Content-Type")
        try:
            async with asyncio.timeout(DELETE_TIMEOUT):
                async with http.delete(session, headers=headers) as resp:
                    log.debug("[%s] DELETE session: %d", self.label, resp.status)
        except (aiohttp.ClientError, OSError, TimeoutError) as err:
            log.info("[%s] the session's DELETE failed (%s); the lower ends it when ICE "
                     "fails", self.label, type(err).__name__)


def _prefer_h264(transceiver: RTCRtpTransceiver) -> None:
    """Offer H.264 (and its RTX) only: the lower forwards its camera's H.264 as it is."""
    capabilities = RTCRtpReceiver.getCapabilities("video")
    if capabilities is None:
        return
    h264 = [c for c in capabilities.codecs if c.mimeType.lower() in ("video/h264", "video/rtx")]
    transceiver.setCodecPreferences(h264)


def _prefer_audio(transceiver: RTCRtpTransceiver) -> None:
    """Offer the audio codecs a stream carries as they come: Opus, PCMU, PCMA."""
    capabilities = RTCRtpReceiver.getCapabilities("audio")
    if capabilities is None:
        return
    transceiver.setCodecPreferences([c for c in capabilities.codecs
                                     if c.mimeType.split("/")[-1].lower() in AUDIO])


def answered_audio(answer: str) -> AudioInfo | None:
    """The audio the lower's answer sends (its first audio codec we take), or None."""
    parsed = aiortc_internals.parse_offer(answer)
    if not parsed.has_audio or parsed.audio_direction not in ("sendonly", "sendrecv"):
        return None
    for codec in parsed.audio_codecs:
        info = AUDIO.get(codec.mimeType.split("/")[-1].lower())
        if info is not None and codec.clockRate == info.clock_rate:
            return info
    return None


def _problem(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}

