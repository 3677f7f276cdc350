"""Instant start: a joiner sees the live picture at once, not the GOP replayed in real time.

Time to first decoded frame is measured from the POST.  The picture a player shows
first is the last of the join burst (timestamps compressed to end at live time); it
must be the live one: the running viewer's frame number, within 100 ms of pictures.
Targets (issue 3): median <= 200 ms and worst of 20 <= 300 ms at GOP 2 s and 4 s, as
measured by ``scripts/bench/startup.py`` on a quiet machine.  Here the medians are held
to the target; the worst case gets room for a busy CI machine (2 cores shared with
other suites), still far below waiting for the next keyframe (GOP/2 on average).
"""

from __future__ import annotations

import statistics

import pytest

from tests.webrtc.conftest import RelayFactory, demo
from tests.whep_client import measure_joins

pytestmark = pytest.mark.netns

JOINS = 20
FPS = 25
WORST_ALLOWED = 0.6  # the 0.3 s target is the benchmark's, on a quiet machine


@pytest.mark.parametrize("gop", [2, 4])
async def test_joiner_starts_at_the_live_picture_fast(relay_factory: RelayFactory,
                                                      gop: int) -> None:
    relay = await relay_factory({1: demo(gop, fps=FPS, width=640, height=360)})
    times, live, lags = await measure_joins(relay.http, relay.url, 1, JOINS,
                                            token="tok-alice", running_token="tok-bob")
    median, worst = statistics.median(times), max(times)
    print(f"GOP {gop}s: time to first frame median {median * 1000:.0f} ms, "
          f"worst {worst * 1000:.0f} ms; live picture median "
          f"{statistics.median(live) * 1000:.0f} ms, worst {max(live) * 1000:.0f} ms; "
          f"lag behind running viewer (frames) {sorted(lags)}")
    # the camera's next keyframe is on average gop/2 away: we must be far faster
    assert median <= 0.200, times
    assert worst <= WORST_ALLOWED, times
    assert statistics.median(live) <= 0.200 and max(live) <= WORST_ALLOWED, live
    assert all(-3 <= lag <= 2 for lag in lags), sorted(lags)
