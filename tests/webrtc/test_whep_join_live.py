"""Joiners at a real camera size are live within 1 s, wherever in the GOP they join.

A 1280x720 25 fps H.264 camera at about 3 Mbit/s with a 4 s GOP (the camera simulator
serving ``scripts/bench/clip.py``'s grain clip, whose frame numbers are burnt into the
picture): one aiortc viewer keeps watching while joiners arrive spread over the GOP.
Each joiner decodes every frame; it is live when it shows the running viewer's picture
or a newer one (at most 2 frames behind, as the Chromium test counts it).  Sent at once,
the cached GOP of a late joiner (~1.5 MB) overflowed the viewer's buffers: NACKs, PLIs,
replays and a skip to the next keyframe left joiners 1-4 s behind.  The relay promises
live within 1 s; that, not the benchmark's figures, is the pass mark here (2 cores
shared with other suites).
"""

from __future__ import annotations

import pytest

from camrelay.relay.sinks.fanout import FanoutCounters
from camrelay.relay.sinks.webrtc import WebRtcSession
from camrelay.relay.stream import SourceSpec
from tests.camsim_fixture import CamSim
from tests.join_viewers import ViewerProcess
from tests.webrtc.conftest import RelayFactory
from tests.whep_client import Join

pytestmark = pytest.mark.netns

CLIP, GOP_FRAMES, PERIOD = "j720g4", 100, 200  # the camsim_720p fixture's clip
JOINS = 6
LIVE_WITHIN = 1.0


async def test_joiners_at_720p_are_live_within_1s_across_a_4s_gop(
        relay_factory: RelayFactory, camsim_720p: CamSim) -> None:
    relay = await relay_factory({1: SourceSpec(camsim_720p.url("/" + CLIP))})
    viewers = await ViewerProcess.start(relay.url, 1, token="tok-alice", running_token="tok-bob",
                                        gop_frames=GOP_FRAMES, period=PERIOD, timeout=3.0)
    joins: list[Join] = []
    notes: list[str] = []
    try:
        for i in range(JOINS):
            joins.append(await viewers.join(i * GOP_FRAMES // JOINS))
            # the joiner's relay-side counters, for the failure message
            notes.extend(session_note(s) for s in relay.egress.sessions() if s.owner == 1)
            await viewers.leave()
        gap = await viewers.running_gap()
    finally:
        await viewers.close()
    report = [(j.phase, round(j.first_frame * 1000),
               None if j.live is None else round(j.live * 1000), n)
              for j, n in zip(joins, notes, strict=True)]
    print(f"(GOP phase, first frame ms, live ms): {report}; running viewer's gap {gap:.3f} s")
    assert all(j.first_frame <= LIVE_WITHIN for j in joins), report
    assert all(j.live is not None and j.live <= LIVE_WITHIN for j in joins), report
    # the viewer already watching never froze while the others joined
    assert gap <= LIVE_WITHIN, f"running viewer froze for {gap:.2f} s"


def session_note(session: WebRtcSession) -> str:
    c = session.counters
    f = session.fanout.counters if session.fanout is not None else FanoutCounters()
    return (f"replays {c.replays} lost {f.packets_lost} nacks {f.nack_requests} "
            f"rtx {f.retransmitted}/{f.nack_declined}/{f.nack_missed} "
            f"plis {f.keyframe_requests} skips {f.behind_skips}")
