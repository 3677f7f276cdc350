"""Pull one H.264 RTSP stream without FFmpeg: camrelay's own client and depacketiser.

:class:`NativeRtspSource` runs on the event loop and puts the stack of
:mod:`camrelay.relay.rtsp` behind the relay's ``Source``: its ``RtspClient`` receives RTP
(interleaved over TCP, or UDP), its ``H264Depacketizer`` makes access units, and
:class:`camrelay.relay.h264.AnnexBWriter` turns them into the same Annex-B units as the
PyAV source: SPS/PPS in front of every IDR picture, taken in band or from
the SDP's ``sprop-parameter-sets``.  The first unit delivered is a keyframe.

The camera's audio (G.711 or AAC, :mod:`camrelay.relay.rtsp.audio`) is SETUP in the
same session and its units go to the sink's ``on_audio``.

A camera whose first video media is not H.264 (or a DESCRIBE redirected to
``rtsps://``) is handed to the PyAV :class:`.ffmpeg.FfmpegSource` after this session is torn
down, so everything that must be decoded and transcoded keeps its one code path.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from camrelay.errors import SourceUnavailable
from camrelay.relay import h264
from camrelay.relay.media import VideoInfo
from camrelay.relay.rtsp.audio import AudioDepacketizer, audio_info
from camrelay.relay.rtsp.client import Redirected, RtspClient
from camrelay.relay.rtsp.rtp import H264Depacketizer
from camrelay.relay.rtsp.sdp import MediaDescription, SessionDescription
from camrelay.relay.rtsp.sps import parse_sps
from camrelay.relay.sources.ffmpeg import FfmpegSource, picture_size
from camrelay.relay.stream import SourceSpec, UnitSink

log = logging.getLogger(__name__)


class _Units:
    """Depacketised access units -> Annex-B units for the sink (on the loop)."""

    def __init__(self, sink: UnitSink, media: MediaDescription) -> None:
        self._sink = sink
        self._media = media
        sps, pps = media.parameter_sets()
        oob = [p for p in (sps, pps) if p is not None]
        self._writer = h264.AnnexBWriter(h264.annexb(oob) if oob else None)
        self.started = False

    def __call__(self, nals: list[bytes], pts: int, key: bool, arrival: float) -> None:
        data, key = self._writer.write(nals)
        if not self.started:
            if not key:
                return
            self.started = True
            self._sink.on_info(self._info(data), False)
        self._sink.on_unit(data, pts, key, arrival)

    def _info(self, keyframe: bytes) -> VideoInfo:
        return h264_video_info(self._writer, keyframe, self._media.framerate)


def h264_video_info(writer: h264.AnnexBWriter, keyframe: bytes, fps: float | None
                    ) -> VideoInfo:
    """What a sink needs of an H.264 stream, from its parameter sets (or, when the SPS
    does not tell, the first keyframe decoded for its size)."""
    sps, pps = writer.sps, writer.pps
    width = height = 0
    if sps is not None:
        try:
            parsed = parse_sps(sps)
            width, height, fps = parsed.width, parsed.height, fps or parsed.fps
        except ValueError as exc:
            log.debug("unreadable SPS (%s): decoding the first keyframe for its size", exc)
    if not width or not height:
        width, height = picture_size(keyframe)
    profile = None
    if sps is not None:
        try:
            profile = h264.profile_level_id(sps)
        except ValueError:
            profile = None
    return VideoInfo(codec="h264", width=width, height=height, fps=fps,
                     profile_level_id=profile, sps=sps, pps=pps)


class NativeRtspSource:
    """One RTSP session per :meth:`run`; see the module doc."""

    def __init__(self, spec: SourceSpec) -> None:
        self.spec = spec

    async def run(self, sink: UnitSink) -> None:
        spec = self.spec
        client = RtspClient(spec.url, username=spec.username, password=spec.password,
                            transport=spec.transport, connect_timeout=spec.connect_timeout,
                            read_timeout=spec.read_timeout)
        delegate: SourceSpec | None = None
        try:
            try:
                description = await client.describe()
            except Redirected as redirect:
                delegate = replace(self.spec, url=redirect.url, client="ffmpeg")
            else:
                media = description.sdp.first_video()
                if media is None:
                    raise SourceUnavailable(f"{client.url}: the stream has no video track",
                                            reason="no_video")
                if media.encoding == "H264":
                    await self._play(client, media, description.sdp, sink)
                    return
                log.debug("%s: video is %s, not H.264: pulling it with FFmpeg", client.url,
                          media.encoding or f"payload type {media.payload_type}")
                delegate = replace(self.spec, url=description.url, client="ffmpeg")
        finally:
            await client.close()
        assert delegate is not None
        await FfmpegSource(delegate).run(sink)

    async def _play(self, client: RtspClient, media: MediaDescription, sdp: SessionDescription,
                    sink: UnitSink) -> None:
        units = _Units(sink, media)
        depacketizer = H264Depacketizer(media.payload_type, units, clock_rate=media.clock_rate,
                                        name=client.url)
        try:
            await client.setup(media, depacketizer.push)
            await self._setup_audio(client, sdp, sink)
            await client.play()
            log.debug("%s: playing over %s", client.url, self.spec.transport)
            await client.serve()
        finally:
            d = depacketizer
            log.debug("%s: %d RTP packets, %d units, %d lost, %d late, %d pictures dropped, "
                      "%d malformed, %d foreign", client.url, d.packets, d.units, d.lost, d.late,
                      d.dropped, d.malformed, d.foreign)

    async def _setup_audio(self, client: RtspClient, sdp: SessionDescription,
                           sink: UnitSink) -> None:
        """SETUP the camera's audio too, when it has one camrelay relays (always, whether
        anyone listens or not: no second session and no re-SETUP when a listener comes,
        at the cost of the camera's audio bitrate, 64 kbit/s for G.711).  A camera that
        refuses it is played without audio."""
        media = sdp.first_audio()
        if media is None:
            return
        info = audio_info(media)
        if info is None:
            log.debug("%s: audio %s is not relayed", client.url,
                      media.encoding or f"payload type {media.payload_type}")
            return
        try:
            depacketizer = AudioDepacketizer(media, info, sink.on_audio)
        except ValueError as exc:
            log.info("%s: audio not relayed: %s", client.url, exc)
            return
        try:
            await client.setup(media, depacketizer.push, channel=2)
        except SourceUnavailable as exc:
            if "SETUP:" not in exc.detail:
                raise  # not an answer refusing it: the session itself is gone
            log.info("%s: the camera refused its audio (%s); video only", client.url,
                     exc.detail)
            return
        sink.on_audio_info(info)
