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
from typing import Any

import pytest

from camrelay.relay.stream import SourceSpec
from tests.camsim_fixture import CamSim
from tests.webrtc.conftest import RelayFactory
from tests.webrtc.test_whep_chromium import browser as _browser  # noqa: F401  (the fixture)
from tests.webrtc.test_whep_chromium import open_player, samples, wait_samples
from tests.whep_client import WhepViewer, join_until_live, lag, wait_phase

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


async def wait_page_phase(page: Any, phase: int, timeout: float = 10.0) -> None:
    """Wait until the page shows a picture ``phase`` frames into a GOP."""
    await page.wait_for_function(
        "(phase) => { const s = window.__samples || []; "
        f"return s.length && s[s.length - 1].n % {GOP_FRAMES} === phase; }}",
        arg=phase, timeout=timeout * 1000, polling="raf")


async def test_chromium_joiners_at_720p_are_live_within_1s(
        relay_factory: RelayFactory, camsim_720p: CamSim, browser: Any) -> None:
    relay = await relay_factory({1: SourceSpec(camsim_720p.url("/" + CLIP))})
    running = await open_player(browser, relay, 1, "tok-bob")
    await wait_samples(running, 30)
    report = []
    for phase in (50, 75, 95):  # the long bursts: half a GOP and more to catch up
        await wait_page_phase(running, phase)
        joiner = await open_player(browser, relay, 1, "tok-alice")
        # until it has shown pictures for 1.5 s after its POST
        await joiner.wait_for_function(
            "(() => { const s = window.__samples || []; const t0 = window.camrelayPlayer.postedAt;"
            " return t0 && s.length && s[s.length - 1].t - t0 > 1500; })()", timeout=10_000)
        _, run_samples = await samples(running)
        t0, join_samples = await samples(joiner)

        def running_at(t: float, run_samples: list[dict[str, float]] = run_samples
                       ) -> int | None:
            seen = [int(s["n"]) for s in run_samples if s["t"] <= t]
            return seen[-1] if seen else None

        matched = [s for s in join_samples
                   if (ref := running_at(s["t"])) is not None
                   and lag(ref, int(s["n"]), PERIOD) <= 2]
        first_any = join_samples[0]["t"] - t0
        first_live = matched[0]["t"] - t0 if matched else None
        late = [lag(r, int(s["n"]), PERIOD) for s in join_samples
                if s["t"] - t0 > 1000 and (r := running_at(s["t"])) is not None]
        report.append((phase, round(first_any), first_live and round(first_live),
                       max(late, default=None)))
        await joiner.evaluate("window.camrelayPlayer.stop()")
        await joiner.context.close()
    print(f"chromium (GOP phase, first picture ms, live ms, most frames behind after 1 s): "
          f"{report}")
    await running.evaluate("window.camrelayPlayer.stop()")
    await running.context.close()
    assert all(live is not None and live <= 1000 for _, _, live, _ in report), report
    # and it stays live: never more than 2 frames behind the running viewer after 1 s
    assert all(behind is not None and behind <= 2 for *_, behind in report), report
