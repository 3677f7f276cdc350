"""Chromium joiners at a real camera size show the live picture within 1 s.

A 1280x720 25 fps H.264 camera at about 3 Mbit/s with a 4 s GOP (the camsim_720p
fixture's clip, frame numbers burnt in): one Chromium page keeps watching while joiner
pages arrive at six phases of the GOP.  A late joiner gets up to 4 s of GOP as a paced
burst; Chromium schedules playout by RTP timestamp against arrival, so a burst stamped
as one instant but arriving over a few hundred ms looked like heavy jitter: its playout
delay grew, it dropped frames and showed live only 1.5-2 s later.  The fan-out now
stamps a burst's units with their send times.  Live: the joiner shows the running page's
picture or a newer one (at most 2 frames behind).
"""

from __future__ import annotations

from typing import Any

import pytest

from camrelay.relay.stream import SourceSpec
from tests.camsim_fixture import CamSim
from tests.webrtc import test_whep_chromium as chromium
from tests.webrtc.conftest import RelayFactory
from tests.webrtc.test_whep_chromium import open_player, samples, wait_samples

pytestmark = pytest.mark.netns

browser = chromium.browser  # the fixture

CLIP, GOP_FRAMES = "j720g4", 100
PHASES = (0, 16, 33, 50, 66, 83)  # frames into the GOP at which each joiner arrives
LIVE_WITHIN = 1.0


async def test_chromium_joiners_at_720p_are_live_within_1s_across_a_4s_gop(
        relay_factory: RelayFactory, camsim_720p: CamSim, browser: Any) -> None:
    relay = await relay_factory({1: SourceSpec(camsim_720p.url("/" + CLIP))})
    running = await open_player(browser, relay, 1, "tok-bob")
    await wait_samples(running, 10)
    report: list[tuple[int, float | None]] = []
    for phase in PHASES:
        # wait for the running picture to reach this phase of the GOP
        await running.wait_for_function(
            f"(() => {{ const s = window.__samples; if (!s.length) return false;"
            f" return s[s.length - 1].n % {GOP_FRAMES} === {phase}; }})()",
            polling=5, timeout=15_000)
        joiner = await open_player(browser, relay, 1, "tok-alice")
        try:
            await wait_samples(joiner, 5)
            await joiner.wait_for_timeout(LIVE_WITHIN * 1000 + 500)
            _, run_samples = await samples(running)
            t0, join_samples = await samples(joiner)
        finally:
            await joiner.evaluate("window.camrelayPlayer.stop()")
            await joiner.context.close()

        def running_at(t: float, seen: list[dict[str, float]] = run_samples) -> float | None:
            before = [s["n"] for s in seen if s["t"] <= t]
            return before[-1] if before else None

        matched = [s for s in join_samples
                   if (ref := running_at(s["t"])) is not None and s["n"] >= ref - 2]
        report.append((phase, round((matched[0]["t"] - t0) / 1000, 3) if matched else None))
        first = round((join_samples[0]["t"] - t0) / 1000, 3)
        shown = len([s for s in join_samples if not matched or s["t"] < matched[0]["t"]])
        print(f"phase {phase}: first picture {first} s, {shown} pictures before live")
    await running.context.close()
    print(f"chromium joiners (GOP phase, live after s): {report}")
    assert all(live is not None and live <= LIVE_WITHIN for _, live in report), report
