"""The playout-delay header extension: a catch-up renders as decoded, then live playout.

Chromium offers libwebrtc's ``playout-delay`` RTP header extension; the relay answers it
and sends a join burst's units (and the live units queued behind it) with min 0 /
max 10 ms, so that Chromium decodes and shows them at once instead of scheduling them
through its jitter buffer, and every unit after that with libwebrtc's defaults (0, 10 s),
which the receiver keeps from then on.  A real aiortc viewer offers the extension the
way Chromium does (its offer gets Chromium's ``a=extmap`` line); what reaches it is read
from the decrypted RTP headers.  A viewer that does not offer it gets no extension.
"""

from __future__ import annotations

import struct
from typing import Any

import pytest
from aiortc import rtcdtlstransport
from aiortc.rtp import unpack_header_extensions

from camrelay.relay.sinks.aiortc_internals import PLAYOUT_DELAY_URI
from camrelay.relay.sinks.webrtc import WebRtcConfig
from tests.webrtc.conftest import HOST_ADDRESSES, RelayFactory, demo, wait_until
from tests.whep_client import WhepViewer

pytestmark = pytest.mark.netns

EXT_ID = 5  # Chromium 156's id for it
CATCH_UP = b"\x00\x00\x01"  # min 0, max 1 (10 ms units)
LIVE = b"\x00\x03\xe8"  # min 0, max 1000: libwebrtc's defaults


def offer_playout_delay(sdp: str) -> str:
    """The offer with Chromium's playout-delay extmap in its video section."""
    head, video = sdp.split("m=video", 1)
    lines = video.split("\r\n")
    lines.insert(1, f"a=extmap:{EXT_ID} {PLAYOUT_DELAY_URI}")
    return head + "m=video" + "\r\n".join(lines)


def playout_delay(data: bytes) -> bytes | None:
    """The playout-delay element of a (decrypted) RTP packet, if it has one."""
    if not data[0] & 0x10:
        return None
    start = 12 + 4 * (data[0] & 0x0F)
    profile, words = struct.unpack("!HH", data[start:start + 4])
    elements = unpack_header_extensions(profile, data[start + 4:start + 4 + 4 * words])
    return next((value for ext_id, value in elements if ext_id == EXT_ID), None)


async def test_catch_up_units_render_at_once_and_live_units_restore_playout(
        relay_factory: RelayFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[int, list[tuple[int, bytes | None]]] = {}  # SSRC: (timestamp, extension)
    parse = rtcdtlstransport.RtpPacket.parse

    def recording_parse(data: bytes, *args: Any) -> Any:
        packet = parse(data, *args)
        seen.setdefault(packet.ssrc, []).append((packet.timestamp, playout_delay(data)))
        return packet

    # the viewers' side only: the relay parses no RTP of its own
    monkeypatch.setattr(rtcdtlstransport.RtpPacket, "parse", staticmethod(recording_parse))
    relay = await relay_factory({1: demo(4)}, config=WebRtcConfig(
        host_addresses=HOST_ADDRESSES, connect_timeout=10, join_timeout=5))
    plain = await WhepViewer.connect(relay.http, relay.url, 1, "tok-bob")
    chromium_like: WhepViewer | None = None
    try:
        await plain.wait_frames(40, timeout=15)  # the joiner gets >= 1.6 s of GOP
        chromium_like = await WhepViewer.connect(relay.http, relay.url, 1, "tok-alice",
                                                 munge_offer=offer_playout_delay)
        assert f"a=extmap:{EXT_ID} {PLAYOUT_DELAY_URI}" in chromium_like.answer
        assert "playout-delay" not in plain.answer
        await chromium_like.wait_frames(75, timeout=15)
        session = relay.egress.get(chromium_like.location.rsplit("/", 1)[1])
        assert session is not None and session.counters.burst_units >= 30

        def ssrc_of(viewer: WhepViewer) -> int:
            receiver = next(t.receiver for t in viewer.pc.getTransceivers()
                            if t.kind == "video")
            return int(receiver.getSynchronizationSources()[0].source)

        await wait_until(lambda: len(seen.get(ssrc_of(chromium_like), ())) > 0)
        joined = seen[ssrc_of(chromium_like)]
        values = [value for _, value in joined]
        assert set(values) == {CATCH_UP, LIVE}, set(values)
        # the catch-up first (the whole burst), then live playout for good
        switch = values.index(LIVE)
        assert set(values[:switch]) == {CATCH_UP} and set(values[switch:]) == {LIVE}
        catch_up_units = len({ts for ts, value in joined if value == CATCH_UP})
        assert catch_up_units >= session.counters.burst_units, catch_up_units
        assert len({ts for ts, value in joined if value == LIVE}) >= 25
        assert all(value is None for _, value in seen[ssrc_of(plain)])
    finally:
        await plain.close()
        if chromium_like is not None:
            await chromium_like.close()
