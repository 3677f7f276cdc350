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

import itertools
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from camrelay.relay.stream import SourceSpec
from tests.camsim_fixture import CamSim
from tests.webrtc.conftest import RelayFactory
from tests.whep_client import WhepViewer, join_until_live, wait_phase

pytestmark = pytest.mark.netns

ROOT = Path(__file__).resolve().parents[2]
CLIPS = ROOT / "tests" / ".cache" / "join-clips"
CLIP, GOP_FRAMES, PERIOD = "j720g4", 100, 200
JOINS = 6
LIVE_WITHIN = 1.0


@pytest.fixture(scope="module")
def camsim_720p() -> Iterator[CamSim]:
    subprocess.run([sys.executable, str(ROOT / "scripts" / "bench" / "clip.py"),
                    "--out", str(CLIPS), "--name", CLIP, "--size", "1280x720", "--gop", "4",
                    "--bitrate", "3000000"], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    sim = CamSim(CLIPS)
    try:
        yield sim
    finally:
        sim.close()


async def test_joiners_at_720p_are_live_within_1s_across_a_4s_gop(
        relay_factory: RelayFactory, camsim_720p: CamSim) -> None:
    relay = await relay_factory({1: SourceSpec(camsim_720p.url("/" + CLIP))})
    running = await WhepViewer.connect(relay.http, relay.url, 1, "tok-bob")
    try:
        await running.wait_frames(25, timeout=10)
        watched_from = len(running.frames)
        joins = []
        sessions: list[str] = []

        def note() -> None:  # the joiner's relay-side counters, for the failure message
            for s in relay.egress.sessions():
                if s.owner == 1 and s.fanout is not None:
                    f = s.fanout.counters
                    sessions.append(f"replays {s.counters.replays} lost {f.packets_lost} "
                                    f"nacks {f.nack_requests} plis {f.keyframe_requests} "
                                    f"skips {f.behind_skips}")

        for i in range(JOINS):
            await wait_phase(running, GOP_FRAMES, i * GOP_FRAMES // JOINS)
            joins.append(await join_until_live(relay.http, relay.url, 1, "tok-alice", running,
                                               period=PERIOD, gop_frames=GOP_FRAMES,
                                               timeout=3.0, before_close=note))
        seen = [f.at for f in running.frames[watched_from:]]
    finally:
        await running.close()
    report = [(j.phase, round(j.first_frame * 1000),
               None if j.live is None else round(j.live * 1000), n)
              for j, n in zip(joins, sessions, strict=True)]
    print(f"(GOP phase, first frame ms, live ms): {report}")
    assert all(j.first_frame <= LIVE_WITHIN for j in joins), report
    assert all(j.live is not None and j.live <= LIVE_WITHIN for j in joins), report
    # the viewer already watching never froze while the others joined
    gap = max(b - a for a, b in itertools.pairwise(seen))
    assert gap <= LIVE_WITHIN, f"running viewer froze for {gap:.2f} s"

